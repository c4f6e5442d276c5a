// The contact sheet: every degradation type and preset on one crop, labelled with a built-in 5x7
// bitmap font (no font library needed), as the visual check in docs/degradation_contact_sheet.png.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "face2scene/degrade.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene {
namespace {
constexpr double kPi = 3.14159265358979323846;

// Rows of 5 bits (bit 4 = leftmost) for the characters the labels use.
const uint8_t* glyph(char ch) {
  static const struct {
    char c;
    uint8_t rows[7];
  } font[] = {
      {'A', {14, 17, 17, 31, 17, 17, 17}}, {'B', {30, 17, 17, 30, 17, 17, 30}}, {'C', {14, 17, 16, 16, 16, 17, 14}},
      {'D', {30, 17, 17, 17, 17, 17, 30}}, {'E', {31, 16, 16, 30, 16, 16, 31}}, {'F', {31, 16, 16, 30, 16, 16, 16}},
      {'G', {14, 17, 16, 23, 17, 17, 15}}, {'H', {17, 17, 17, 31, 17, 17, 17}}, {'I', {14, 4, 4, 4, 4, 4, 14}},
      {'J', {7, 2, 2, 2, 2, 18, 12}},      {'K', {17, 18, 20, 24, 20, 18, 17}}, {'L', {16, 16, 16, 16, 16, 16, 31}},
      {'M', {17, 27, 21, 21, 17, 17, 17}}, {'N', {17, 17, 25, 21, 19, 17, 17}}, {'O', {14, 17, 17, 17, 17, 17, 14}},
      {'P', {30, 17, 17, 30, 16, 16, 16}}, {'Q', {14, 17, 17, 17, 21, 18, 13}}, {'R', {30, 17, 17, 30, 20, 18, 17}},
      {'S', {15, 16, 16, 14, 1, 1, 30}},   {'T', {31, 4, 4, 4, 4, 4, 4}},       {'U', {17, 17, 17, 17, 17, 17, 14}},
      {'V', {17, 17, 17, 17, 17, 10, 4}},  {'W', {17, 17, 17, 21, 21, 21, 10}}, {'X', {17, 17, 10, 4, 10, 17, 17}},
      {'Y', {17, 17, 17, 10, 4, 4, 4}},    {'Z', {31, 1, 2, 4, 8, 16, 31}},     {'0', {14, 17, 19, 21, 25, 17, 14}},
      {'1', {4, 12, 4, 4, 4, 4, 14}},      {'2', {14, 17, 1, 2, 4, 8, 31}},     {'3', {31, 2, 4, 2, 1, 17, 14}},
      {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},   {'6', {6, 8, 16, 30, 17, 17, 14}},
      {'7', {31, 1, 2, 4, 8, 8, 8}},       {'8', {14, 17, 17, 14, 17, 17, 14}}, {'9', {14, 17, 17, 15, 1, 2, 12}},
      {'.', {0, 0, 0, 0, 0, 12, 12}},      {'=', {0, 0, 31, 0, 31, 0, 0}},      {'/', {0, 1, 2, 4, 8, 16, 0}},
      {'-', {0, 0, 0, 31, 0, 0, 0}},       {',', {0, 0, 0, 0, 12, 4, 8}},       {':', {0, 12, 12, 0, 12, 12, 0}},
      {'(', {2, 4, 8, 8, 8, 4, 2}},        {')', {8, 4, 2, 2, 2, 4, 8}},        {'x', {0, 0, 17, 10, 4, 10, 17}},
      {'+', {0, 4, 4, 31, 4, 4, 0}},
  };
  for (const auto& g : font)
    if (g.c == ch) return g.rows;
  return nullptr;  // space and anything else: blank
}

// White text on the (already dark) label strip of an RGB float canvas [3,H,W].
void draw_text(torch::Tensor& canvas, int x0, int y0, const std::string& text) {
  auto a = canvas.accessor<float, 3>();
  int x = x0;
  for (char ch : text) {
    if (const uint8_t* g = glyph(ch)) {
      for (int r = 0; r < 7; ++r)
        for (int c = 0; c < 5; ++c)
          if ((g[r] >> (4 - c)) & 1) {
            const int px = x + c, py = y0 + r;
            if (px >= 0 && py >= 0 && px < canvas.size(2) && py < canvas.size(1))
              for (int k = 0; k < 3; ++k) a[k][py][px] = 1.f;
          }
    }
    x += 6;
  }
}

struct Tile {
  std::string label;
  torch::Tensor image;  // [3,h,w]
};

// Smaller (SR) outputs are shown with nearest-neighbour upscaling so their pixels stay visible.
torch::Tensor fit(const torch::Tensor& img, int tile) {
  auto x = img.unsqueeze(0);
  if (x.size(2) != tile || x.size(3) != tile) x = resize_images(x, tile, tile, ResizeMode::kNearest);
  return x.squeeze(0);
}
}  // namespace

Image make_contact_sheet(const Image& source, uint64_t seed, int tile) {
  if (source.empty()) throw ArgumentError("contact sheet: empty source image");
  if (tile < 64 || tile > 1024) throw ArgumentError("contact sheet: tile " + std::to_string(tile) + " outside 64..1024");
  torch::NoGradGuard no_grad;
  // A square crop around the upper-middle of the photo (faces in group photos), area-resized.
  auto full = image_to_tensor(source, torch::kCPU, torch::kFloat32, true).unsqueeze(0);
  const int64_t h = full.size(2), w = full.size(3);
  const int64_t side = std::min<int64_t>({h, w, 2 * int64_t(tile)});
  const int64_t cy = std::clamp<int64_t>(int64_t(0.45 * h) - side / 2, 0, h - side), cx = (w - side) / 2;
  auto crop = full.slice(2, cy, cy + side).slice(3, cx, cx + side);
  if (side != tile) crop = resize_images(crop, tile, tile, ResizeMode::kArea);
  crop = crop.clamp(0.0, 1.0).mul(255.0).round().div(255.0).contiguous();

  std::vector<Tile> tiles;
  tiles.push_back({"ORIGINAL", crop[0]});
  auto blur = [&](const std::string& label, BlurParams b) {
    tiles.push_back({label, blur_images(crop, make_blur_kernel(b).unsqueeze(0))[0]});
  };
  blur("ISO GAUSS S=2.0", {KernelType::kIsoGaussian, 15, 2.0f, 2.0f});
  blur("ANISO S=3.5/0.7 30DEG", {KernelType::kAnisoGaussian, 21, 3.5f, 0.7f, float(kPi / 6)});
  blur("GENERAL. S=2 B=4", {KernelType::kGeneralizedIso, 15, 2.0f, 2.0f, 0, 4.0f});
  blur("PLATEAU S=1.5 B=1", {KernelType::kPlateauIso, 21, 1.5f, 1.5f, 0, 1.0f});
  blur("SINC WC=0.8 (RINGING)", {KernelType::kSinc, 21, 0, 0, 0, 0, 0.8f});
  blur("MOTION L=13 45DEG", {KernelType::kMotion, 15, 0, 0, float(kPi / 4), 0, 0, 13.0f});
  blur("DEFOCUS R=4", {KernelType::kDefocus, 11, 0, 0, 0, 0, 0, 0, 4.0f});
  for (auto [label, mode] : {std::pair<const char*, ResizeMode>{"BICUBIC /4", ResizeMode::kBicubic},
                             {"AREA /4", ResizeMode::kArea},
                             {"NEAREST /4 (ALIASED)", ResizeMode::kNearest}}) {
    tiles.push_back({label, fit(resize_images(crop, tile / 4, tile / 4, mode)[0], tile)});
  }
  auto noise = [&](const std::string& label, NoiseType type, bool gray, float level) {
    DegradationParams p;
    p.stage1.noise = {type, gray, level};
    p.seed = seed;
    tiles.push_back({label, apply_degradation(crop, p)[0]});
  };
  noise("GAUSS NOISE 20 COLOUR", NoiseType::kGaussian, false, 20);
  noise("GAUSS NOISE 20 GREY", NoiseType::kGaussian, true, 20);
  noise("POISSON x3 COLOUR", NoiseType::kPoisson, false, 3);
  noise("POISSON x3 GREY", NoiseType::kPoisson, true, 3);
  tiles.push_back({"JPEG Q30 LIBJPEG", jpeg_images(crop, {30}, JpegMode::kCodec)[0]});
  tiles.push_back({"JPEG Q30 EMULATED", jpeg_images(crop, {30}, JpegMode::kEmulated)[0]});
  auto preset = [&](const std::string& name, uint64_t s, bool keep) {
    DegradationSampler sampler(name, s);
    sampler.set_keep_size(keep);
    const DegradationParams p = sampler.sample();
    log_info("contact sheet, " + name + " seed " + std::to_string(s) + ": " + p.describe());
    std::string label = name + (keep ? " (x1 KEEP SIZE)" : " (x" + std::to_string(int(p.out_scale)) + ")");
    for (auto& ch : label) ch = (ch >= 'a' && ch <= 'z') ? char(ch - 32) : ch;
    tiles.push_back({label, fit(apply_degradation(crop, p)[0], tile)});
  };
  for (const auto& name : preset_names()) preset(name, seed, false);
  preset("moderate", seed, true);
  preset("realesrgan", seed + 1, false);
  preset("realesrgan", seed + 2, false);
  const int cols = 6, label_h = 11, gap = 4;
  const int rows = int((tiles.size() + cols - 1) / cols);
  const int cw = cols * tile + (cols + 1) * gap, chh = rows * (tile + label_h) + (rows + 1) * gap;
  auto canvas = torch::full({3, chh, cw}, 0.12f);
  for (size_t i = 0; i < tiles.size(); ++i) {
    const int r = int(i) / cols, c = int(i) % cols;
    const int x = gap + c * (tile + gap), y = gap + r * (tile + label_h + gap);
    canvas.slice(1, y, y + tile).slice(2, x, x + tile).copy_(tiles[i].image.expand({3, tile, tile}));
    draw_text(canvas, x + 1, y + tile + 2, tiles[i].label);
  }
  return tensor_to_image(canvas, 8);
}

}  // namespace face2scene
