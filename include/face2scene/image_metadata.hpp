// Reading photos the way viewers show them: EXIF orientation, ICC profiles, size limits; and
// alpha carried through restorers whose networks see colour only. (Part of the io module, beside
// image.hpp; a header of its own so that image.hpp, included nearly everywhere, stays small.)
#pragma once

#include <cstdint>
#include <string>

#include "face2scene/image.hpp"

namespace face2scene {

// How a photo's metadata is applied on read.
//  - EXIF orientation (JPEG APP1 "Exif", PNG eXIf; tag 0x0112, values 1-8): the pixels are turned
//    or mirrored so the image is the right way up, as viewers show it; apply_orientation = false
//    keeps the stored (raw) layout (CLI: --keep-orientation on upscale, restore-scene, faces,
//    degrade). Outputs carry no orientation tag, so they display as the pixels are.
//  - ICC profiles (JPEG APP2 "ICC_PROFILE", PNG iCCP) are CONVERTED to sRGB on read with lcms2
//    (perceptual intent), not passed through: every model, metric and encoder here assumes sRGB
//    values and every written PNG is tagged sRGB, so one rule holds everywhere (values are sRGB),
//    at the cost of clipping colours outside sRGB's gamut. A profile that is sRGB already (it maps
//    a test grid of colours to within half an 8-bit step of themselves) leaves the pixels
//    untouched, so ordinary camera JPEGs decode bit-exactly as without it. A profile that lcms2
//    cannot read, or of another colour space than the pixels (Lab or CMYK on RGB), is ignored
//    with a warning naming the file, never silently; so is any profile in a build without lcms2
//    (F2S_HAVE_LCMS2 undefined, e.g. a machine without liblcms2-dev).
//  - max_pixels: decoding refuses larger images before allocating them (a 30-byte PNG header can
//    claim 65535² pixels).
struct ImageReadOptions {
  bool apply_orientation = true;
  uint64_t max_pixels = uint64_t{1} << 30;
};

// read_image / decode_image (image.hpp) with options; those use the defaults above.
Image read_image(const std::string& path, const ImageReadOptions& options);
Image decode_image(const std::string& bytes, const std::string& name_for_errors, const ImageReadOptions& options);

// EXIF orientation (1-8) from an EXIF TIFF block (as it follows "Exif\0\0" in a JPEG's APP1, or a
// PNG eXIf chunk); 1 (as stored) when the block is malformed or has no valid orientation tag.
int exif_orientation(const std::string& tiff);
// The image as displayed for EXIF orientation 1-8: 2 mirrors left-right, 3 turns 180°, 4 mirrors
// top-bottom, 5 transposes, 6 turns 90° clockwise, 7 transverses, 8 turns 90° anticlockwise
// (5-8 swap width and height). Alpha follows the colour. Other values return the image as is.
Image apply_orientation(const Image& image, int orientation);

// Gives `to` the alpha of `from` resized to `to`'s size (bicubic, clamped; a uniform alpha stays
// exactly uniform), for restorers whose networks see colour only. No-op when `from` has none.
void carry_alpha(const Image& from, Image& to);

}  // namespace face2scene
