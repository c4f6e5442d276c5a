// PNG through libpng's classic API. (The simplified API would turn 16-bit data into linear light,
// which is not what a 16-bit sRGB file holds.)
#include <png.h>

#include <csetjmp>
#include <cstring>

#include "io/codecs.hpp"

namespace face2scene::detail {
namespace {
struct ReadState {
  const std::string* bytes;
  size_t pos;
  std::string error;
};
struct WriteState {
  std::string out;
  std::string error;
};

void on_error(png_structp png, png_const_charp msg) {
  auto* err = static_cast<std::string*>(png_get_error_ptr(png));
  if (err) *err = msg;
  longjmp(png_jmpbuf(png), 1);
}
void on_warning(png_structp, png_const_charp) {}

void read_fn(png_structp png, png_bytep out, png_size_t n) {
  auto* st = static_cast<ReadState*>(png_get_io_ptr(png));
  if (st->pos + n > st->bytes->size()) png_error(png, "file is truncated");
  std::memcpy(out, st->bytes->data() + st->pos, n);
  st->pos += n;
}
void write_fn(png_structp png, png_bytep data, png_size_t n) {
  auto* st = static_cast<WriteState*>(png_get_io_ptr(png));
  st->out.append(reinterpret_cast<const char*>(data), n);
}
void flush_fn(png_structp) {}
}  // namespace

Image decode_png(const std::string& bytes, const std::string& name) {
  ReadState st{&bytes, 0, {}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st.error, on_error, on_warning);
  if (!png) throw Error(name + ": libpng could not start");
  png_infop info = png_create_info_struct(png);
  Image img;
  std::vector<png_bytep> rows;
  std::vector<uint8_t> buf;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw FormatError(name + ": unreadable PNG (" + st.error + ")");
  }
  png_set_read_fn(png, &st, read_fn);
  // Large but sane limit: 1 gigapixel of rows.
  png_set_user_limits(png, 65535, 65535);
  png_read_info(png, info);
  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0;
  png_get_IHDR(png, info, &w, &h, &depth, &color, nullptr, nullptr, nullptr);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_swap(png);  // host order (little-endian) for uint16_t
  png_read_update_info(png, info);
  const int out_depth = png_get_bit_depth(png, info);
  const int out_color = png_get_color_type(png, info);
  const int nch = png_get_channels(png, info);
  const bool alpha = (out_color & PNG_COLOR_MASK_ALPHA) != 0;
  const int colour_ch = alpha ? nch - 1 : nch;
  const size_t rowbytes = png_get_rowbytes(png, info);
  buf.resize(rowbytes * h);
  rows.resize(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = buf.data() + y * rowbytes;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);

  if (w == 0 || h == 0) throw FormatError(name + ": image has zero size");
  img = Image(static_cast<int>(w), static_cast<int>(h), colour_ch, out_depth == 16 ? 16 : 8);
  if (alpha) img.alpha.resize(img.pixel_count());
  for (png_uint_32 y = 0; y < h; ++y) {
    for (png_uint_32 x = 0; x < w; ++x) {
      for (int c = 0; c < nch; ++c) {
        const size_t idx = static_cast<size_t>(x) * nch + c;
        const uint16_t v = out_depth == 16 ? reinterpret_cast<const uint16_t*>(rows[y])[idx] : rows[y][idx];
        const size_t p = static_cast<size_t>(y) * w + x;
        if (c < colour_ch) {
          img.data[p * colour_ch + c] = v;
        } else {
          img.alpha[p] = v;
        }
      }
    }
  }
  return img;
}

std::string encode_png(const Image& image, int bit_depth, int level) {
  const Image src = bit_depth == image.bit_depth ? image : image.with_bit_depth(bit_depth);
  WriteState st;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &st.error, on_error, on_warning);
  if (!png) throw Error("libpng could not start");
  png_infop info = png_create_info_struct(png);
  const bool alpha = src.has_alpha();
  const int nch = src.channels + (alpha ? 1 : 0);
  volatile int bpp = src.bit_depth == 16 ? 2 : 1;  // volatile: lives across setjmp
  std::vector<uint8_t> row(static_cast<size_t>(src.width) * nch * bpp);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw Error("PNG encoding failed: " + st.error);
  }
  png_set_write_fn(png, &st, write_fn, flush_fn);
  const int color = src.channels == 1 ? (alpha ? PNG_COLOR_TYPE_GRAY_ALPHA : PNG_COLOR_TYPE_GRAY)
                                      : (alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB);
  png_set_IHDR(png, info, src.width, src.height, bit_depth, color, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_sRGB(png, info, PNG_sRGB_INTENT_PERCEPTUAL);
  png_set_compression_level(png, level);
  png_write_info(png, info);
  if (bit_depth == 16) png_set_swap(png);
  for (int y = 0; y < src.height; ++y) {
    for (int x = 0; x < src.width; ++x) {
      const size_t p = static_cast<size_t>(y) * src.width + x;
      for (int c = 0; c < nch; ++c) {
        const uint16_t v = c < src.channels ? src.data[p * src.channels + c] : src.alpha[p];
        const size_t idx = static_cast<size_t>(x) * nch + c;
        if (bpp == 2) {
          reinterpret_cast<uint16_t*>(row.data())[idx] = v;
        } else {
          row[idx] = static_cast<uint8_t>(v);
        }
      }
    }
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return std::move(st.out);
}

}  // namespace face2scene::detail
