// The annotated preview: boxes, landmarks and face numbers drawn straight into an 8-bit RGB copy
// (no font library: a 3x5 digit font is enough to number the faces).
#include <algorithm>
#include <cmath>

#include "face2scene/faces.hpp"

namespace face2scene {

namespace {
struct Rgb {
  uint16_t r, g, b;
};

void put(Image& img, int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  img.at(x, y, 0) = c.r;
  img.at(x, y, 1) = c.g;
  img.at(x, y, 2) = c.b;
}

void fill(Image& img, int x0, int y0, int x1, int y1, Rgb c) {
  for (int y = std::max(0, y0); y < std::min(img.height, y1); ++y)
    for (int x = std::max(0, x0); x < std::min(img.width, x1); ++x) put(img, x, y, c);
}

void rect(Image& img, const FaceBox& b, int t, Rgb c) {
  const int x0 = static_cast<int>(std::lround(b.x0)), y0 = static_cast<int>(std::lround(b.y0));
  const int x1 = static_cast<int>(std::lround(b.x1)), y1 = static_cast<int>(std::lround(b.y1));
  fill(img, x0 - t, y0 - t, x1 + t, y0, c);
  fill(img, x0 - t, y1, x1 + t, y1 + t, c);
  fill(img, x0 - t, y0, x0, y1, c);
  fill(img, x1, y0, x1 + t, y1, c);
}

// 3x5 glyphs for 0-9, one row per 3 bits.
const uint8_t kDigits[10][5] = {{7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7},
                                {5, 5, 7, 1, 1}, {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1},
                                {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}};

void number(Image& img, int x, int y, int n, int px, Rgb fg, Rgb bg) {
  const std::string s = std::to_string(n);
  fill(img, x, y, x + static_cast<int>(s.size()) * 4 * px + px, y + 7 * px, bg);
  for (size_t k = 0; k < s.size(); ++k) {
    const int d = s[k] - '0';
    for (int r = 0; r < 5; ++r)
      for (int c = 0; c < 3; ++c)
        if (kDigits[d][r] & (4 >> c))
          fill(img, x + px + static_cast<int>(k) * 4 * px + c * px, y + px + r * px,
               x + px + static_cast<int>(k) * 4 * px + (c + 1) * px, y + px + (r + 1) * px, fg);
  }
}
}  // namespace

Image draw_faces(const Image& image, const std::vector<DetectedFace>& faces) {
  Image out = image.to_rgb().with_bit_depth(8);
  out.alpha.clear();
  const int t = std::max(1, std::min(out.width, out.height) / 400);
  const Rgb green{40, 220, 60}, yellow{255, 210, 0}, cyan{0, 200, 255}, red{255, 40, 40},
      black{0, 0, 0}, white{255, 255, 255};
  for (size_t i = 0; i < faces.size(); ++i) {
    const auto& f = faces[i];
    // Green: matched identity (or no matching asked), yellow: matching ran and found no one.
    const bool unknown = f.identity.empty() && f.identity_distance >= 0.f;
    rect(out, f.box, t, unknown ? yellow : green);
    for (const auto& p : f.landmarks68) {
      const int x = static_cast<int>(std::lround(p.x)), y = static_cast<int>(std::lround(p.y));
      fill(out, x - t / 2, y - t / 2, x - t / 2 + t, y - t / 2 + t, cyan);
    }
    if (f.has_points5) {
      const int r = std::max(1, static_cast<int>(f.box.width() / 40.f));
      for (const auto& p : f.points5) {
        const int x = static_cast<int>(std::lround(p.x)), y = static_cast<int>(std::lround(p.y));
        fill(out, x - r, y - r, x + r + 1, y + r + 1, red);
      }
    }
    const int px = std::max(1, std::min(static_cast<int>(f.box.width() / 18.f), 4 * t));
    number(out, static_cast<int>(f.box.x0), static_cast<int>(f.box.y0) - 7 * px - t,
           static_cast<int>(i), px, black, white);
  }
  return out;
}

}  // namespace face2scene
