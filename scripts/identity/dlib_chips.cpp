// Development tool (not part of the build): writes dlib's own 150x150 face chips (size 150,
// padding 0.25, the input the descriptor was trained on) for images of a folder tree, using
// Debian's libdlib (HOG face detector + /usr/share/dlib/shape_predictor_68_face_landmarks.dat
// from libdlib-data). Used to measure the LFW accuracy with true dlib alignment and to place the
// fixed LFW centre crop (docs/identity.md).
//   g++ -O2 -std=c++17 scripts/identity/dlib_chips.cpp -o /tmp/dlib_chips $(pkg-config --libs dlib-1)
//   /tmp/dlib_chips IN_DIR OUT_DIR > chips.tsv   (OUT_DIR/<sub>/<stem>.png; tsv: file cx cy side angle)
// Images without a detection use a centred 110 px box for the landmarks (last column 0).
#include <dlib/image_io.h>
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: dlib_chips IN_DIR OUT_DIR\n");
    return 2;
  }
  dlib::frontal_face_detector detector = dlib::get_frontal_face_detector();
  dlib::shape_predictor sp;
  dlib::deserialize("/usr/share/dlib/shape_predictor_68_face_landmarks.dat") >> sp;
  std::vector<fs::path> files;
  for (auto& e : fs::recursive_directory_iterator(argv[1]))
    if (e.is_regular_file() && e.path().extension() == ".jpg") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    dlib::matrix<dlib::rgb_pixel> img;
    dlib::load_image(img, f.string());
    auto dets = detector(img, 1);
    std::string rel = fs::relative(f, argv[1]).replace_extension(".png").string();
    const bool detected = !dets.empty();
    if (!detected) {
      // LFW faces sit in the centre: fall back to a centred box of typical size.
      dets.push_back(dlib::centered_rect(dlib::point(img.nc() / 2, img.nr() / 2), 110, 110));
    } else {
      // The face nearest the centre (LFW's labelled face).
      auto c = dlib::dpoint(img.nc() / 2.0, img.nr() / 2.0);
      std::sort(dets.begin(), dets.end(), [&](const auto& a, const auto& b) {
        return dlib::length(dlib::dpoint(dlib::center(a)) - c) < dlib::length(dlib::dpoint(dlib::center(b)) - c);
      });
    }
    auto shape = sp(img, dets[0]);
    auto chip = dlib::get_face_chip_details(shape, 150, 0.25);
    dlib::matrix<dlib::rgb_pixel> face;
    dlib::extract_image_chip(img, chip, face);
    fs::path out = fs::path(argv[2]) / rel;
    fs::create_directories(out.parent_path());
    dlib::save_png(face, out.string());
    auto r = chip.rect;
    std::printf("%s\t%.2f\t%.2f\t%.2f\t%.4f\t%d\n", rel.c_str(), (r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0,
                static_cast<double>(r.width()), chip.angle, detected ? 1 : 0);
  }
  return 0;
}
