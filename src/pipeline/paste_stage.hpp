// The paste stage of Face2Scene::restore, kept apart from the orchestration in pipeline.cpp:
// internal to f2s_pipeline (the public pieces, paste_core_options and seamless_paste_face, are in
// face2scene/pipeline.hpp).
#pragma once

#include <torch/torch.h>

#include "face2scene/faces.hpp"
#include "face2scene/image.hpp"
#include "face2scene/pipeline.hpp"

namespace face2scene::pipeline_detail {

// [C,H,W] or [B,C,H,W] to h×w: area when shrinking, bicubic (clamped to [0,1]) when enlarging.
torch::Tensor resize(const torch::Tensor& x, int64_t h, int64_t w);

// Pastes the aligned face square into y [3,H,W] (the output, `scale` × the photo) on the face's
// footprint only; `photo_to_aligned` maps the photo to the square.
void paste_in_place(torch::Tensor& y, const torch::Tensor& face, const Similarity& photo_to_aligned, double scale);

// align_face of y on the face's footprint (plus a margin) only, with the same result.
torch::Tensor align_face_region(const torch::Tensor& y, const Similarity& out_to_aligned, int64_t side);

// The photo x [3,H,W]'s face, bicubic ×scale and aligned to side² at that scale (photo_to_aligned
// maps the photo to the side² square): the input face at the output's resolution, on `device`.
torch::Tensor input_face_at_scale(const torch::Tensor& x, const Similarity& photo_to_aligned, int64_t side, double scale,
                                  const torch::Device& device);

// The paste band's tone correction of a face square from d = scene − face (seamless_paste_face).
torch::Tensor paste_tone(const torch::Tensor& d);

// The output [3,H,W] float → an Image of `channels` (1: BT.601 luma) and `bit_depth`, in bands of rows.
Image to_image_in_bands(const torch::Tensor& y, int channels, int bit_depth);

// The face [3,N,N] with the scene restorer's structure up to a k² copy (the consistency step).
torch::Tensor keep_input_structure(const torch::Tensor& face, const torch::Tensor& scene, int64_t k, int64_t limit);

}  // namespace face2scene::pipeline_detail
