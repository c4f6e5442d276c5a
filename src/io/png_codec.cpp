// PNG through libpng's classic API. (The simplified API would turn 16-bit data into linear light,
// which is not what a 16-bit sRGB file holds.) Large images can instead be written by a parallel
// encoder of our own (libpng cannot deflate one image on several threads); libpng still decodes.
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <thread>
#include <type_traits>
#include <vector>

#include "io/codecs.hpp"

namespace face2scene::detail {
namespace {
struct ReadState {
  const std::string* bytes;
  size_t pos;
  std::string error;
  std::string icc_warning;  // libpng rejected the iCCP chunk: said aloud by the caller
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
void on_read_warning(png_structp png, png_const_charp msg) {
  auto* st = static_cast<ReadState*>(png_get_io_ptr(png));
  if (st && msg && std::strncmp(msg, "iCCP", 4) == 0 && st->icc_warning.empty()) st->icc_warning = msg;
}

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

// libpng reports errors by longjmp: as in jpeg_codec.cpp, every libpng call that can fail runs
// inside guarded(), whose own frame holds the setjmp and whose work lambda (capturing by
// reference, checked trivially destructible) creates no object with a destructor; the C++ objects
// live in the caller, which the longjmp never crosses.
template <typename F>
bool guarded(png_structp png, F work) {
  static_assert(std::is_trivially_destructible<F>::value, "a longjmp would skip its destructor");
  if (setjmp(png_jmpbuf(png))) return false;
  work();
  return true;
}

}  // namespace

Image decode_png(const std::string& bytes, const std::string& name, uint64_t max_pixels, DecodedMetadata& meta) {
  ReadState st{&bytes, 0, {}, {}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st.error, on_error, on_read_warning);
  if (!png) throw Error(name + ": libpng could not start");
  png_infop info = png_create_info_struct(png);
  struct Destroy {
    png_structp* png;
    png_infop* info;
    ~Destroy() { png_destroy_read_struct(png, info, nullptr); }
  } destroy{&png, &info};
  if (!info) throw Error(name + ": libpng could not start");
  auto fail = [&]() { return FormatError(name + ": unreadable PNG (" + st.error + ")"); };

  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0;
  if (!guarded(png, [&] {
        png_set_read_fn(png, &st, read_fn);
        png_set_user_limits(png, 65535, 65535);
        png_read_info(png, info);
        png_get_IHDR(png, info, &w, &h, &depth, &color, nullptr, nullptr, nullptr);
      })) {
    throw fail();
  }
  if (w == 0 || h == 0) throw FormatError(name + ": image has zero size");
  if (static_cast<uint64_t>(w) * h > max_pixels) {
    throw FormatError(name + ": PNG of " + std::to_string(w) + "x" + std::to_string(h) +
                      " pixels exceeds the limit of " + std::to_string(max_pixels));
  }
  png_charp icc_name = nullptr;
  int icc_compression = 0;
  png_bytep icc = nullptr;
  png_uint_32 icc_len = 0;
  if (png_get_iCCP(png, info, &icc_name, &icc_compression, &icc, &icc_len) && icc && icc_len) {
    meta.icc.assign(reinterpret_cast<const char*>(icc), icc_len);
  } else if (!st.icc_warning.empty()) {
    // libpng drops a profile it finds malformed; never silently (image_metadata.hpp).
    log_warn(name + ": ICC profile rejected by libpng (" + st.icc_warning + "); its pixels are taken as sRGB");
  }
  int out_depth = 0, out_color = 0, nch = 0;
  size_t rowbytes = 0;
  if (!guarded(png, [&] {
        if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
        if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
        if (depth == 16) png_set_swap(png);  // host order (little-endian) for uint16_t
        png_set_interlace_handling(png);
        png_read_update_info(png, info);
        out_depth = png_get_bit_depth(png, info);
        out_color = png_get_color_type(png, info);
        nch = png_get_channels(png, info);
        rowbytes = png_get_rowbytes(png, info);
      })) {
    throw fail();
  }
  const bool alpha = (out_color & PNG_COLOR_MASK_ALPHA) != 0;
  const int colour_ch = alpha ? nch - 1 : nch;
  if ((colour_ch != 1 && colour_ch != 3) || (out_depth != 8 && out_depth != 16) ||
      rowbytes != static_cast<size_t>(w) * nch * (out_depth / 8)) {
    throw FormatError(name + ": unexpected PNG layout after expansion");
  }
  std::vector<uint8_t> buf(rowbytes * h);
  std::vector<png_bytep> rows(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = buf.data() + y * rowbytes;
  png_bytepp row_ptrs = rows.data();
  if (!guarded(png, [&] {
        png_read_image(png, row_ptrs);
        png_read_end(png, info);  // `info`: an eXIf chunk may follow the image data
      })) {
    throw fail();
  }
#ifdef PNG_eXIf_SUPPORTED
  png_bytep exif = nullptr;
  png_uint_32 exif_len = 0;
  if (png_get_eXIf_1(png, info, &exif_len, &exif) && exif && exif_len) {
    meta.exif.assign(reinterpret_cast<const char*>(exif), exif_len);
  }
#endif

  Image img(static_cast<int>(w), static_cast<int>(h), colour_ch, out_depth == 16 ? 16 : 8);
  if (alpha) img.alpha.resize(img.pixel_count());
  for (png_uint_32 y = 0; y < h; ++y) {
    for (png_uint_32 x = 0; x < w; ++x) {
      for (int c = 0; c < nch; ++c) {
        const size_t idx = static_cast<size_t>(x) * nch + c;
        uint16_t v;
        if (out_depth == 16) {
          std::memcpy(&v, rows[y] + 2 * idx, 2);  // rows are byte-aligned only
        } else {
          v = rows[y][idx];
        }
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

namespace {
// One thread, libpng: the reference path, used for small images and threads <= 1.
std::string encode_png_libpng(const Image& src, int level) {
  const int bit_depth = src.bit_depth;
  WriteState st;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &st.error, on_error, on_warning);
  if (!png) throw Error("libpng could not start");
  png_infop info = png_create_info_struct(png);
  struct Destroy {
    png_structp* png;
    png_infop* info;
    ~Destroy() { png_destroy_write_struct(png, info); }
  } destroy{&png, &info};
  const bool alpha = src.has_alpha();
  const int nch = src.channels + (alpha ? 1 : 0);
  const int bpp = src.bit_depth == 16 ? 2 : 1;
  std::vector<uint8_t> row(static_cast<size_t>(src.width) * nch * bpp);
  uint8_t* r = row.data();
  const int color = src.channels == 1 ? (alpha ? PNG_COLOR_TYPE_GRAY_ALPHA : PNG_COLOR_TYPE_GRAY)
                                      : (alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB);
  if (!guarded(png, [&] {
        png_set_write_fn(png, &st, write_fn, flush_fn);
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
                std::memcpy(r + 2 * idx, &v, 2);
              } else {
                r[idx] = static_cast<uint8_t>(v);
              }
            }
          }
          png_write_row(png, r);
        }
        png_write_end(png, nullptr);
      })) {
    throw Error("PNG encoding failed: " + st.error);
  }
  return std::move(st.out);
}

// ---- parallel encoder ------------------------------------------------------------------------
// zlib's deflate is single-threaded and dominates writing large outputs (~0.3 s for a 2048² RGB
// image at level 2 on the H100 machine's CPU, against ~0.02 s for the GPU ×4 pass). The image is
// cut into horizontal strips, each filtered and deflated on its own thread into a raw deflate
// stream ending on a byte boundary (Z_SYNC_FLUSH), so that the strips concatenate into one valid
// zlib stream (the pigz technique). A strip starts with an empty window, which costs little: after
// filtering, matches are mostly within a row or two.

// Fewer rows than this per strip gain little from a thread of their own, and each strip restarts
// the deflate window; smaller images go through libpng.
constexpr int kMinStripRows = 64;
// IDAT chunk size: any size is valid; 1 MiB keeps chunks few without one huge chunk.
constexpr size_t kIdatChunkBytes = size_t{1} << 20;
// zlib's own length types are 32-bit: feed and check-sum large buffers in pieces.
constexpr size_t kZlibPiece = size_t{1} << 30;

struct Layout {
  int width = 0, height = 0;
  int samples = 0;  // per pixel, alpha included
  int bytes_per_sample = 1;
  size_t pixel_bytes = 0;  // the filters' "bpp"
  size_t row_bytes = 0;    // unfiltered, without the filter byte
};

// Row y in file order: samples interleaved, alpha last, 16-bit big-endian as PNG stores them.
void pack_row(const Image& img, const Layout& l, int y, uint8_t* dst) {
  const int ch = img.channels;
  const bool alpha = img.has_alpha();
  const uint16_t* data = img.data.data() + static_cast<size_t>(y) * l.width * ch;
  const uint16_t* a = alpha ? img.alpha.data() + static_cast<size_t>(y) * l.width : nullptr;
  for (int x = 0; x < l.width; ++x) {
    for (int c = 0; c < l.samples; ++c) {
      const uint16_t v = c < ch ? data[static_cast<size_t>(x) * ch + c] : a[x];
      if (l.bytes_per_sample == 2) {
        *dst++ = static_cast<uint8_t>(v >> 8);
        *dst++ = static_cast<uint8_t>(v & 0xFF);
      } else {
        *dst++ = static_cast<uint8_t>(v);
      }
    }
  }
}

// Filter f applied to one row; returns the sum of the filtered bytes read as signed magnitudes.
// Each filter is its own loop (first pixel, which has no left neighbour, apart) so the compiler
// vectorises it: choosing among five filters makes filtering a sizeable share of the encode.
template <typename Predict>
uint64_t apply_filter(const uint8_t* cur, const uint8_t* prev, size_t n, size_t bpp, uint8_t* out,
                      Predict predict) {
  uint64_t sum = 0;
  const size_t head = std::min(bpp, n);
  for (size_t i = 0; i < head; ++i) {
    const uint8_t v = static_cast<uint8_t>(cur[i] - predict(0, prev[i], 0));
    out[i] = v;
    sum += v < 128 ? v : 256 - v;
  }
  for (size_t i = head; i < n; ++i) {
    const uint8_t v = static_cast<uint8_t>(cur[i] - predict(cur[i - bpp], prev[i], prev[i - bpp]));
    out[i] = v;
    sum += v < 128 ? v : 256 - v;
  }
  return sum;
}

// Filters one row with each of the five PNG filters and keeps the one whose bytes, read as signed,
// have the smallest sum of magnitudes: libpng's own heuristic for 8/16-bit images, so files stay
// as small as the libpng path's. `prev` is the raw row above (all zeros for the image's first
// row); the choice depends on the two raw rows only, so strips encode independently and
// deterministically. `out` receives the filter byte and n filtered bytes.
void filter_row(const uint8_t* cur, const uint8_t* prev, size_t n, size_t bpp,
                std::vector<uint8_t> (&scratch)[5], uint8_t* out) {
  uint64_t sums[5];
  sums[0] = apply_filter(cur, prev, n, bpp, scratch[0].data(), [](int, int, int) { return 0; });
  sums[1] = apply_filter(cur, prev, n, bpp, scratch[1].data(), [](int a, int, int) { return a; });
  sums[2] = apply_filter(cur, prev, n, bpp, scratch[2].data(), [](int, int b, int) { return b; });
  sums[3] = apply_filter(cur, prev, n, bpp, scratch[3].data(),
                         [](int a, int b, int) { return (a + b) >> 1; });
  sums[4] = apply_filter(cur, prev, n, bpp, scratch[4].data(), [](int a, int b, int c) {
    // Paeth predictor (PNG spec 9.4); ties prefer a, then b.
    const int pa = std::abs(b - c), pb = std::abs(a - c), pc = std::abs(a + b - 2 * c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
  });
  int best = 0;
  for (int f = 1; f < 5; ++f) {
    if (sums[f] < sums[best]) best = f;
  }
  out[0] = static_cast<uint8_t>(best);
  std::memcpy(out + 1, scratch[best].data(), n);
}

struct Strip {
  std::string deflated;  // raw deflate, byte-aligned at the end
  uLong adler = 1;       // of the filtered bytes
  size_t filtered_bytes = 0;
};

// Rows [y0, y1): pack (with the row above, which the Up/Avg/Paeth filters read), filter,
// check-sum and deflate. The last strip finishes the deflate stream; the others sync-flush so
// the next strip's stream can follow on a byte boundary.
Strip encode_strip(const Image& img, const Layout& l, int y0, int y1, int level, bool last) {
  const size_t n = l.row_bytes;
  std::vector<uint8_t> raw_prev(n, 0), raw_cur(n);  // zeros above the first row (PNG spec)
  if (y0 > 0) pack_row(img, l, y0 - 1, raw_prev.data());
  std::vector<uint8_t> scratch[5];
  for (auto& v : scratch) v.resize(n);
  std::vector<uint8_t> filtered(static_cast<size_t>(y1 - y0) * (n + 1));
  for (int y = y0; y < y1; ++y) {
    pack_row(img, l, y, raw_cur.data());
    filter_row(raw_cur.data(), raw_prev.data(), n, l.pixel_bytes, scratch,
               filtered.data() + static_cast<size_t>(y - y0) * (n + 1));
    raw_prev.swap(raw_cur);
  }

  Strip s;
  s.filtered_bytes = filtered.size();
  s.adler = adler32(0L, Z_NULL, 0);
  for (size_t off = 0; off < filtered.size(); off += kZlibPiece) {
    s.adler = adler32(s.adler, filtered.data() + off,
                      static_cast<uInt>(std::min(kZlibPiece, filtered.size() - off)));
  }

  z_stream zs{};
  // Z_FILTERED, as libpng uses for filtered rows (it only matters at levels 4-9); memLevel 8 is
  // zlib's and libpng's default; windowBits -15: raw deflate, the zlib wrapper is written once.
  if (deflateInit2(&zs, level, Z_DEFLATED, -15, 8, Z_FILTERED) != Z_OK) {
    throw Error("PNG encoding failed: zlib could not start (out of memory?) for a " +
                std::to_string(l.width) + "x" + std::to_string(l.height) + " image");
  }
  s.deflated.resize(deflateBound(&zs, static_cast<uLong>(filtered.size())) + 64);
  size_t in_off = 0, out_off = 0;
  const int final_flush = last ? Z_FINISH : Z_SYNC_FLUSH;
  for (;;) {
    const size_t in_left = filtered.size() - in_off;
    const bool final_piece = in_left <= kZlibPiece;
    zs.next_in = filtered.data() + in_off;
    zs.avail_in = static_cast<uInt>(std::min(in_left, kZlibPiece));
    const int flush = final_piece ? final_flush : Z_NO_FLUSH;
    int rc = Z_OK;
    do {
      if (s.deflated.size() - out_off < 64) s.deflated.resize(s.deflated.size() * 2 + 64);
      zs.next_out = reinterpret_cast<Bytef*>(&s.deflated[out_off]);
      zs.avail_out = static_cast<uInt>(std::min(s.deflated.size() - out_off, kZlibPiece));
      const uInt avail_before = zs.avail_out;
      rc = deflate(&zs, flush);
      out_off += avail_before - zs.avail_out;
      if (rc == Z_STREAM_ERROR) {
        deflateEnd(&zs);
        throw Error("PNG encoding failed: zlib deflate error");
      }
      // Z_FINISH is done at Z_STREAM_END. Otherwise the piece is done once zlib has taken all
      // input and still had room left (for Z_SYNC_FLUSH, that means the flush is complete).
    } while (flush == Z_FINISH ? rc != Z_STREAM_END : (zs.avail_in != 0 || zs.avail_out == 0));
    in_off += std::min(in_left, kZlibPiece);
    if (final_piece) break;
  }
  deflateEnd(&zs);
  s.deflated.resize(out_off);
  return s;
}

void put_u32(std::string& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}

void put_chunk(std::string& out, const char* type, const char* data, size_t n) {
  put_u32(out, static_cast<uint32_t>(n));
  const size_t type_at = out.size();
  out.append(type, 4);
  out.append(data, n);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(out.data() + type_at), static_cast<uInt>(4 + n));
  put_u32(out, static_cast<uint32_t>(crc));
}

std::string encode_png_parallel(const Image& src, int level, int strips) {
  Layout l;
  l.width = src.width;
  l.height = src.height;
  l.samples = src.channels + (src.has_alpha() ? 1 : 0);
  l.bytes_per_sample = src.bit_depth == 16 ? 2 : 1;
  l.pixel_bytes = static_cast<size_t>(l.samples) * l.bytes_per_sample;
  l.row_bytes = l.pixel_bytes * static_cast<size_t>(l.width);

  // Strip k covers rows [h*k/n, h*(k+1)/n). The calling thread does strip 0 rather than idle.
  std::vector<Strip> done(static_cast<size_t>(strips));
  std::vector<std::future<Strip>> futures;
  auto row_of = [&](int k) {
    return static_cast<int>(static_cast<int64_t>(l.height) * k / strips);
  };
  for (int k = 1; k < strips; ++k) {
    futures.push_back(std::async(std::launch::async, encode_strip, std::cref(src), std::cref(l),
                                 row_of(k), row_of(k + 1), level, k == strips - 1));
  }
  std::exception_ptr first_error;
  try {
    done[0] = encode_strip(src, l, 0, row_of(1), level, strips == 1);
  } catch (...) {
    first_error = std::current_exception();
  }
  // Every future is waited for before returning: the strips read `src` and `l`.
  for (int k = 1; k < strips; ++k) {
    try {
      done[static_cast<size_t>(k)] = futures[static_cast<size_t>(k - 1)].get();
    } catch (...) {
      if (!first_error) first_error = std::current_exception();
    }
  }
  if (first_error) std::rethrow_exception(first_error);

  // zlib wrapper: CMF 0x78 (deflate, 32 KiB window), FLEVEL as zlib itself writes it for this
  // level, FCHECK making the 16-bit header a multiple of 31 (RFC 1950).
  const int flevel = level < 2 ? 0 : level < 6 ? 1 : level == 6 ? 2 : 3;
  const unsigned cmf = 0x78, flg_base = static_cast<unsigned>(flevel) << 6;
  const unsigned flg = flg_base + (31 - (cmf * 256 + flg_base) % 31) % 31;
  size_t total = 2 + 4;
  for (const auto& s : done) total += s.deflated.size();
  std::string zdata;
  zdata.reserve(total);
  zdata.push_back(static_cast<char>(cmf));
  zdata.push_back(static_cast<char>(flg));
  uLong adler = done[0].adler;
  for (size_t k = 0; k < done.size(); ++k) {
    zdata += done[k].deflated;
    if (k > 0) {
      adler = adler32_combine(adler, done[k].adler, static_cast<z_off_t>(done[k].filtered_bytes));
    }
    std::string().swap(done[k].deflated);  // free as we go: outputs can be tens of MB
  }
  put_u32(zdata, static_cast<uint32_t>(adler));

  std::string out;
  out.reserve(zdata.size() + zdata.size() / kIdatChunkBytes * 12 + 128);
  out.append("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  put_u32(ihdr, static_cast<uint32_t>(l.width));
  put_u32(ihdr, static_cast<uint32_t>(l.height));
  const int color = src.channels == 1 ? (src.has_alpha() ? 4 : 0) : (src.has_alpha() ? 6 : 2);
  // Then compression 0 (deflate), filter method 0 (adaptive), interlace 0 (none).
  const char tail[5] = {static_cast<char>(src.bit_depth), static_cast<char>(color), 0, 0, 0};
  ihdr.append(tail, 5);
  put_chunk(out, "IHDR", ihdr.data(), ihdr.size());
  // sRGB, rendering intent 0 (perceptual): what the libpng path writes with png_set_sRGB.
  const char intent = 0;
  put_chunk(out, "sRGB", &intent, 1);
  for (size_t off = 0; off < zdata.size(); off += kIdatChunkBytes) {
    put_chunk(out, "IDAT", zdata.data() + off, std::min(kIdatChunkBytes, zdata.size() - off));
  }
  put_chunk(out, "IEND", "", 0);
  return out;
}
}  // namespace

std::string encode_png(const Image& image, int bit_depth, int level, int threads) {
  // Convert only when the depth changes: upscaled outputs are tens of MB, not worth a copy.
  Image converted;
  if (bit_depth != image.bit_depth) converted = image.with_bit_depth(bit_depth);
  const Image& src = bit_depth != image.bit_depth ? converted : image;
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int strips = std::min(threads, src.height / kMinStripRows);
  if (strips < 2) return encode_png_libpng(src, level);
  return encode_png_parallel(src, level, strips);
}

}  // namespace face2scene::detail
