#pragma once
// Decoding image files (JPEG with libturbojpeg, PNG with libpng) into packed 8-bit RGB, and encoding JPEGs
// (for tests and for `fractrain data make-image-folder`). Every image comes out as RGB whatever it was stored
// as: grayscale is replicated into three channels, CMYK is converted without colour management, and a PNG's
// alpha channel is composited onto black (libpng's simplified API).
#include <cstdint>
#include <string>
#include <vector>

namespace fractrain {

struct RgbImage {
  int64_t height = 0;
  int64_t width = 0;
  std::vector<uint8_t> pixels;  // height x width x 3, row-major, R G B per pixel
};

// Decodes a whole file's bytes; the format is recognised by its signature, not its name (ImageNet has PNGs
// named .JPEG). Throws fractrain::Error naming `path` for a file that is neither JPEG nor PNG, a corrupt or
// truncated stream, or an image larger than 2^15 pixels on a side. libjpeg warnings that leave the image whole
// (such as extraneous bytes before a marker, which a few ImageNet files have) are accepted; a premature end of
// the data is not.
RgbImage decode_image(const std::vector<uint8_t>& bytes, const std::string& path);

// Reads and decodes a file; throws fractrain::Error naming it when it cannot be read or decoded.
RgbImage read_image_file(const std::string& path);

// JPEG-encodes packed pixels with 1 (grayscale), 3 (RGB) or 4 (CMYK, stored Adobe-style, inverted)
// components per pixel, at quality 1..100 with 4:4:4 chroma (none for grayscale).
std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int64_t height, int64_t width, int components, int quality);

// PNG-encodes packed 8-bit RGB pixels.
std::vector<uint8_t> encode_png_rgb(const uint8_t* pixels, int64_t height, int64_t width);

}  // namespace fractrain
