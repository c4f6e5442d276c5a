// JPEG through libjpeg(-turbo) with default decoding (ISLOW DCT, fancy upsampling), so decoded
// BSDS/BSD100 JPEGs match the PNGs the SR literature uses.
#include <csetjmp>
#include <cstddef>
#include <cstdio>  // before jpeglib.h, which uses size_t and FILE
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include <jpeglib.h>
#include <jerror.h>

#include "io/codecs.hpp"

namespace face2scene::detail {
namespace {
struct ErrorMgr {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool premature_eof;
};
void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorMgr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}
void on_message(j_common_ptr) {}
// libjpeg reports a truncated file only as a warning (JWRN_JPEG_EOF) and pads with grey.
void on_emit(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<ErrorMgr*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) err->premature_eof = true;
}

// libjpeg reports errors by longjmp. C++ allows a longjmp only where a throw/catch in its place
// would destroy no object with a non-trivial destructor, so every libjpeg call that can fail runs
// inside guarded(): the setjmp lives in guarded's own frame, the work is a lambda capturing by
// reference (checked trivially destructible) whose body creates no such object, and the C++
// objects (the Image, the row buffer, strings) live in the caller, which the longjmp never crosses.
template <typename F>
bool guarded(ErrorMgr& err, F work) {
  static_assert(std::is_trivially_destructible<F>::value, "a longjmp would skip its destructor");
  if (setjmp(err.jump)) return false;
  work();
  return true;
}

// The ICC profile from APP2 "ICC_PROFILE\0" markers: each carries its 1-based sequence number
// and the marker count; all must be present exactly once (ICC.1 Annex B.4).
std::string assemble_icc(jpeg_saved_marker_ptr m) {
  static const char kTag[] = "ICC_PROFILE";  // 12 bytes with the NUL
  std::vector<std::string> parts;
  int count = 0;
  for (; m; m = m->next) {
    if (m->marker != JPEG_APP0 + 2 || m->data_length < 14 || std::memcmp(m->data, kTag, 12) != 0) continue;
    const int seq = m->data[12], n = m->data[13];
    if (n == 0 || seq == 0 || seq > n || (count && n != count)) return {};
    if (!count) {
      count = n;
      parts.resize(static_cast<size_t>(n));
    }
    std::string& part = parts[static_cast<size_t>(seq - 1)];
    if (!part.empty()) return {};
    part.assign(reinterpret_cast<const char*>(m->data + 14), m->data_length - 14);
  }
  std::string icc;
  for (const auto& p : parts) {
    if (p.empty()) return {};
    icc += p;
  }
  return icc;
}
}  // namespace

Image decode_jpeg(const std::string& bytes, const std::string& name, uint64_t max_pixels, DecodedMetadata& meta) {
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);  // so that destroying after a failed create is a no-op
  ErrorMgr err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.output_message = on_message;
  err.pub.emit_message = on_emit;
  err.premature_eof = false;
  err.message[0] = '\0';
  // Destroyed on every exit, thrown or not.
  struct Destroy {
    jpeg_decompress_struct* c;
    ~Destroy() { jpeg_destroy_decompress(c); }
  } destroy{&cinfo};
  auto fail = [&]() { return FormatError(name + ": unreadable JPEG (" + err.message + ")"); };

  if (!guarded(err, [&] {
        jpeg_create_decompress(&cinfo);
        jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
        jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);  // EXIF
        jpeg_save_markers(&cinfo, JPEG_APP0 + 2, 0xFFFF);  // ICC profile
        jpeg_read_header(&cinfo, TRUE);
      })) {
    throw fail();
  }
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    throw FormatError(name + ": CMYK JPEGs are not supported (convert to RGB first)");
  }
  if (static_cast<uint64_t>(cinfo.image_width) * cinfo.image_height > max_pixels) {
    throw FormatError(name + ": JPEG of " + std::to_string(cinfo.image_width) + "x" +
                      std::to_string(cinfo.image_height) + " pixels exceeds the limit of " +
                      std::to_string(max_pixels));
  }
  for (auto m = cinfo.marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && std::memcmp(m->data, "Exif\0", 5) == 0) {
      meta.exif.assign(reinterpret_cast<const char*>(m->data + 6), m->data_length - 6);
      break;
    }
  }
  meta.icc = assemble_icc(cinfo.marker_list);
  cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  if (!guarded(err, [&] { jpeg_start_decompress(&cinfo); })) throw fail();
  const int w = static_cast<int>(cinfo.output_width), h = static_cast<int>(cinfo.output_height);
  const int c = cinfo.output_components;
  if (c != 1 && c != 3) throw FormatError(name + ": JPEG with " + std::to_string(c) + " output components");
  Image img(w, h, c, 8);
  std::vector<JSAMPLE> row(static_cast<size_t>(w) * c);
  JSAMPROW r = row.data();
  uint16_t* dst = img.data.data();
  const size_t row_len = row.size();
  if (!guarded(err, [&] {
        while (cinfo.output_scanline < cinfo.output_height) {
          const size_t y = cinfo.output_scanline;
          jpeg_read_scanlines(&cinfo, &r, 1);
          for (size_t i = 0; i < row_len; ++i) dst[y * row_len + i] = r[i];
        }
        jpeg_finish_decompress(&cinfo);
      })) {
    throw fail();
  }
  if (err.premature_eof) throw FormatError(name + ": JPEG data is truncated");
  return img;
}

// Encoding runs on our own well-formed images; the same guard keeps it free of skipped destructors.
std::string encode_jpeg(const Image& image, int quality) {
  const Image src = image.bit_depth == 8 ? image : image.with_bit_depth(8);
  jpeg_compress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);
  ErrorMgr err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.output_message = on_message;
  err.message[0] = '\0';
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  struct Destroy {
    jpeg_compress_struct* c;
    unsigned char** out;
    ~Destroy() {
      jpeg_destroy_compress(c);
      std::free(*out);
    }
  } destroy{&cinfo, &out};
  std::vector<JSAMPLE> row(static_cast<size_t>(src.width) * src.channels);
  JSAMPROW r = row.data();
  const size_t row_len = row.size();
  const uint16_t* pixels = src.data.data();
  if (!guarded(err, [&] {
        jpeg_create_compress(&cinfo);
        jpeg_mem_dest(&cinfo, &out, &out_size);
        cinfo.image_width = src.width;
        cinfo.image_height = src.height;
        cinfo.input_components = src.channels;
        cinfo.in_color_space = src.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
        jpeg_set_defaults(&cinfo);
        jpeg_set_quality(&cinfo, quality, TRUE);
        jpeg_start_compress(&cinfo, TRUE);
        while (cinfo.next_scanline < cinfo.image_height) {
          const size_t off = static_cast<size_t>(cinfo.next_scanline) * row_len;
          for (size_t i = 0; i < row_len; ++i) r[i] = static_cast<JSAMPLE>(pixels[off + i]);
          jpeg_write_scanlines(&cinfo, &r, 1);
        }
        jpeg_finish_compress(&cinfo);
      })) {
    throw Error(std::string("JPEG encoding failed: ") + err.message);
  }
  return std::string(reinterpret_cast<char*>(out), out_size);
}

}  // namespace face2scene::detail
