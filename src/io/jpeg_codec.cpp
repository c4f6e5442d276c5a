// JPEG through libjpeg(-turbo) with default decoding (ISLOW DCT, fancy upsampling), so decoded
// BSDS/BSD100 JPEGs match the PNGs the SR literature uses.
#include <jpeglib.h>
#include <jerror.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>

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
}  // namespace

Image decode_jpeg(const std::string& bytes, const std::string& name) {
  jpeg_decompress_struct cinfo;
  ErrorMgr err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.output_message = on_message;
  err.pub.emit_message = on_emit;
  err.premature_eof = false;
  Image img;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw FormatError(name + ": unreadable JPEG (" + err.message + ")");
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    throw FormatError(name + ": CMYK JPEGs are not supported (convert to RGB first)");
  }
  cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const int w = cinfo.output_width, h = cinfo.output_height, c = cinfo.output_components;
  img = Image(w, h, c, 8);
  std::vector<JSAMPLE> row(static_cast<size_t>(w) * c);
  while (cinfo.output_scanline < cinfo.output_height) {
    const int y = cinfo.output_scanline;
    JSAMPROW r = row.data();
    jpeg_read_scanlines(&cinfo, &r, 1);
    std::copy(row.begin(), row.end(), img.data.begin() + static_cast<size_t>(y) * w * c);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  if (err.premature_eof) throw FormatError(name + ": JPEG data is truncated");
  return img;
}

std::string encode_jpeg(const Image& image, int quality) {
  const Image src = image.bit_depth == 8 ? image : image.with_bit_depth(8);
  jpeg_compress_struct cinfo;
  ErrorMgr err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.output_message = on_message;
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    std::free(out);
    throw Error(std::string("JPEG encoding failed: ") + err.message);
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &out, &out_size);
  cinfo.image_width = src.width;
  cinfo.image_height = src.height;
  cinfo.input_components = src.channels;
  cinfo.in_color_space = src.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  std::vector<JSAMPLE> row(static_cast<size_t>(src.width) * src.channels);
  while (cinfo.next_scanline < cinfo.image_height) {
    const size_t off = static_cast<size_t>(cinfo.next_scanline) * src.width * src.channels;
    for (size_t i = 0; i < row.size(); ++i) row[i] = static_cast<JSAMPLE>(src.data[off + i]);
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&cinfo, &r, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string result(reinterpret_cast<char*>(out), out_size);
  std::free(out);
  return result;
}

}  // namespace face2scene::detail
