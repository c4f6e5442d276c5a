// The face toolkit: detection, landmarks, FFHQ alignment, seamless paste-back and identity
// matching. The face is the oracle of face2scene: everything downstream depends on finding it,
// aligning it exactly and putting the restored face back without a seam.
//
// Detection and landmarks use dlib (HOG detector + 68-point shape predictor) when the library was
// built with it (F2S_HAVE_DLIB); without dlib, FaceDetector throws a clear Error, while alignment,
// paste-back and matching (pure torch, any device) keep working. dlib never appears in this header.
#pragma once

#include <torch/torch.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "face2scene/image.hpp"

namespace face2scene {

struct Point2f {
  float x = 0.f;
  float y = 0.f;
};

// Five points, always in this order: left eye centre, right eye centre (as seen in the image:
// "left" = smaller x for a frontal face), nose tip, left mouth corner, right mouth corner.
using FivePoints = std::array<Point2f, 5>;

// Pixel coordinates: the centre of pixel (i, j) is (i, j); boxes are [x0, x1) x [y0, y1).
struct FaceBox {
  float x0 = 0.f, y0 = 0.f, x1 = 0.f, y1 = 0.f;
  float width() const { return x1 - x0; }
  float height() const { return y1 - y0; }
};
float box_iou(const FaceBox& a, const FaceBox& b);
// True when the boxes' intersection exceeds `share` of the smaller box's area. HOG boxes are tight
// (brows to chin), so two faces' boxes hardly overlap: the detector drops a weaker box that a
// stronger one covers this way, and the pipeline's second look takes a face as found before.
bool boxes_overlap(const FaceBox& a, const FaceBox& b, float share = 0.25f);

struct DetectedFace {
  FaceBox box;
  // Detector confidence, higher is surer: HOG's SVM margin; for SSD the logit of its face
  // probability, so that sigmoid(score) reads as a confidence for both.
  float score = 0.f;
  std::string detector;             // which detector found it
  std::vector<Point2f> landmarks68;  // iBUG 68-point order; empty when landmarks were not run
  FivePoints points5{};             // valid when has_points5
  bool has_points5 = false;
  // Filled by identity matching; empty identity = unknown.
  std::string identity;
  float identity_distance = -1.f;
};

struct DetectOptions {
  // "hog": dlib's HOG+SVM frontal detector (5 pose filters, no weights file), run by dlib on the
  // CPU. "hog-torch": the same detector (dlib's filters, fHOG features, pyramid and suppression)
  // computed with torch ops on `device`: on a GPU a photo is scanned in milliseconds instead of
  // seconds of one core; boxes and scores agree with dlib's up to float rounding. "auto":
  // hog-torch when `device` is CUDA, else hog (Face2Scene sets `device` to its own).
  // Landmarks always run on the CPU (dlib).
  std::string detector = "auto";
  torch::Device device = torch::kCPU;
  // Smallest face side (pixels of the input image) the detector must find. Decides how much the
  // image is upsampled for HOG, whose window is 80 px (so 24 px needs ~3.3x).
  int min_face = 24;
  // Work cap: the (up/down-scaled) image handed to the detector has at most this many pixels;
  // when the cap binds, the smallest detectable face grows and a warning says so.
  int64_t max_detect_pixels = 24'000'000;
  // HOG decision threshold offset: detections with score < min_score are dropped (dlib's own
  // default is 0; negative values find more faces and more false positives).
  float min_score = -0.2f;
  bool landmarks = true;  // run the 68-point predictor and fill landmarks68/points5
  // A second detector beside HOG: face-api's SSD MobileNet v1, a CNN trained on faces in the wild.
  // It finds faces HOG misses (turned, tilted, under caps and sunglasses); a face it finds that no
  // HOG face covers is added (detector "ssd"). "auto": used when its weights are installed
  // (default_ssd_weights_path(), made by scripts/install_faceapi.sh), "off", or a weights path
  // (then required). It runs on `device`.
  std::string ssd = "auto";
  float ssd_min_score = 0.5f;  // its face probability must reach this
};

// $F2S_SSD_WEIGHTS, else $F2S_CACHE/weights/faceapi_ssd_mobilenetv1.safetensors.
std::string default_ssd_weights_path();

// Where dlib's shape_predictor_68_face_landmarks.dat is looked for: $F2S_FACE_MODELS, then
// /usr/share/dlib (Debian libdlib-data).
std::string face_model_dir();
// True when this build has dlib (detection/landmarks available).
bool face_detection_available();

class FaceDetector {
 public:
  // Loads the models (throws Error when dlib is missing from the build or the predictor file is
  // absent, naming the path and the package that provides it).
  explicit FaceDetector(DetectOptions options = {}, const std::string& model_dir = "");
  ~FaceDetector();
  FaceDetector(FaceDetector&&) noexcept;
  FaceDetector& operator=(FaceDetector&&) noexcept;

  // Every face, sorted by decreasing box area. Grey, 16-bit and alpha images are accepted (alpha
  // is ignored). An image without faces gives an empty list. Thread-safe: several threads may
  // detect with one FaceDetector at once (each borrows its own copy of the HOG scanner).
  std::vector<DetectedFace> detect(const Image& image) const;
  // The same with another smallest face than DetectOptions::min_face (the pipeline looks again for
  // faces in its ×4 output, where a 12 px face of the input is 48 px); `ssd` false: HOG only.
  std::vector<DetectedFace> detect(const Image& image, int min_face, bool ssd = true) const;
  // HOG on `grey` and the SSD on `colour` ([3,H,W], 0..1, any device, the same photo): for a
  // caller that holds the photo as a tensor (an RGB Image of a 16 MP output costs 96 MB more).
  std::vector<DetectedFace> detect(const Image& grey, int min_face, const torch::Tensor& colour) const;
  // Whether the SSD detector is loaded (DetectOptions::ssd and its weights).
  bool has_ssd() const;
  // Runs the 68-point predictor inside each face's box (fills landmarks68 and points5).
  void add_landmarks(const Image& image, std::vector<DetectedFace>& faces) const;
  const DetectOptions& options() const;

 private:
  std::vector<DetectedFace> detect_impl(const Image& image, int min_face, bool ssd, const torch::Tensor* colour) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Eye centres = mean of the 6 eye-contour points, nose tip = point 30, mouth corners = 48/54.
FivePoints five_points_from_68(const std::vector<Point2f>& lm68);

// ---- alignment -----------------------------------------------------------------------------
// x' = a*x - b*y + tx, y' = b*x + a*y + ty (rotation+uniform scale+translation).
struct Similarity {
  double a = 1, b = 0, tx = 0, ty = 0;
  Point2f apply(Point2f p) const;
  Similarity inverse() const;
  double scale() const;
};
// Least-squares similarity (Umeyama) mapping src onto dst. `robust`: leave-one-out check: one
// grossly misplaced point (> 8% of the template extent off, and dropping it cuts the others' RMS
// residual by > 60%) is ignored, so a mouth corner under a hand does not tilt the crop.
Similarity fit_similarity(const std::vector<Point2f>& src, const std::vector<Point2f>& dst,
                          bool robust = true);

// FFHQ 5-point template (GFPGAN/CodeFormer/facexlib) at 512x512, scaled for other sizes.
FivePoints ffhq_template(int size = 512);

struct AlignedFace {
  torch::Tensor image;    // [C, size, size] float in [0,1] on the image's device
  Similarity transform;   // image pixel -> aligned pixel
  int size = 512;
};
// Warps `image` ([C,H,W] float, any device) into the FFHQ frame with grid_sample (bilinear;
// area-downscaled first when the face is bigger than the crop, so no aliasing). Outside the photo
// the border is reflected, as FFHQ does.
AlignedFace align_face(const torch::Tensor& image, const FivePoints& points, int size = 512);
AlignedFace align_face(const torch::Tensor& image, const Similarity& image_to_aligned, int size);

struct PasteOptions {
  // Mask in the aligned frame: an ellipse centred on the face whose edge fades with a raised
  // cosine (C1-smooth, so there is no step and no kink at the border). Distances are fractions of
  // the crop size.
  double center_x = 0.5, center_y = 0.53;
  double radius_x = 0.36, radius_y = 0.44;
  double feather = 0.12;  // width of the fade band (fraction of the crop size)
  // When the face shrinks on the way back, each photo pixel averages bilinear samples over this
  // fraction of its footprint (0 = point sampling: sharpest, may alias; 1 = full box filter).
  double antialias = 0.5;
};
// The blending mask [1,size,size] in the aligned frame (1 inside the face, 0 near the border).
torch::Tensor face_blend_mask(int size, const torch::Device& device, const PasteOptions& o = {});
// Puts `face` ([C,S,S], in the aligned frame of `transform`) back into `image` ([C,H,W]):
// inverse warp + feathered-mask blend, in float on the image's device; only the face's bounding
// region is touched. `image_scale` > 1 when `image` is an upscaled version of the photo the
// transform was measured on. Returns a new tensor.
torch::Tensor paste_face(const torch::Tensor& image, const torch::Tensor& face,
                         const Similarity& transform, const PasteOptions& options = {},
                         double image_scale = 1.0);

// ---- identity ------------------------------------------------------------------------------
// A face descriptor: given the whole photo ([3,H,W] float [0,1]) and one detected face (with
// landmarks), returns a 1-D descriptor (128-D for dlib/face-api's ResNet). Kept abstract so the
// toolkit does not depend on a particular recognition net.
using DescriptorFn = std::function<torch::Tensor(const torch::Tensor& image, const DetectedFace& face)>;

struct ReferencePerson {
  std::string name;
  torch::Tensor descriptors;  // [N, D], one row per reference photo where a face was found
  std::vector<std::string> files;
};
// Reads DIR/<person>/*.{jpg,png}: the largest face of each photo is described. A reference photo
// without a detected face is tried as a face crop (the whole image as the box); photos that still
// fail are skipped with a warning. Throws IoError when DIR has no person folders.
std::vector<ReferencePerson> load_references(const std::string& dir, const FaceDetector& detector,
                                             const DescriptorFn& descriptor);

struct FaceMatch {
  std::string person;     // best person, empty when none is within threshold
  float distance = -1.f;  // Euclidean distance to that person's nearest reference
  std::string nearest;    // nearest person regardless of the threshold
};
// 0.6 is dlib's/face-api's threshold for the 128-D ResNet descriptor (99.38% on LFW).
FaceMatch match_descriptor(const std::vector<ReferencePerson>& refs, const torch::Tensor& descriptor,
                           float threshold = 0.6f);
// Matches every face; logs a warning naming the reference people that matched no face and the
// faces that matched no one.
void match_faces(const std::vector<ReferencePerson>& refs, const torch::Tensor& image,
                 std::vector<DetectedFace>& faces, const DescriptorFn& descriptor,
                 float threshold = 0.6f);

class FaceDescriptor;  // face2scene/identity.hpp
// The DescriptorFn of face-api's 128-D recognition net (dlib's ResNet): FFHQ-align at 512, take
// dlib's 150x150 chip region (crop_for_descriptor), embed.
DescriptorFn make_descriptor_fn(std::shared_ptr<const FaceDescriptor> net);

// One identity descriptor for a whole image (identity metrics: `face2scene metrics --refs`): the
// largest detected face, described by `descriptor`. When the detector finds no face and the image
// is square, it is taken as an FFHQ-aligned face crop (what face restorers output, often too
// smooth or too tight for HOG): its 5 points are the FFHQ template, so make_descriptor_fn embeds
// exactly crop_for_descriptor's region, as `face2scene identity --crop ffhq` does. A non-square
// image without a detected face gives no descriptor.
struct ImageIdentity {
  torch::Tensor descriptor;  // [D] float32 on the CPU; undefined when no face
  std::string source;        // "detected", "aligned-crop" (fallback) or "" (no face)
  size_t detected = 0;       // faces the detector found
};
ImageIdentity describe_image_identity(const Image& image, const FaceDetector& detector,
                                      const DescriptorFn& descriptor,
                                      bool aligned_crop_fallback = true);

// ---- drawing -------------------------------------------------------------------------------
// RGB 8-bit copy of `image` with boxes, 5 points (and 68 when present), scores and identities.
Image draw_faces(const Image& image, const std::vector<DetectedFace>& faces);

}  // namespace face2scene
