#include "fractrain/data/image_codec.h"

#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>

#include "fractrain/util/error.h"

namespace fractrain {

namespace {

// Larger sides are a corrupt header, not a photograph, and would ask for gigabytes.
constexpr int64_t kMaxSide = 1 << 15;

struct TjCloser {
  void operator()(void* handle) const { tjDestroy(handle); }
};
using TjHandle = std::unique_ptr<void, TjCloser>;

// One decompressor per thread: creating one allocates, and a handle must not be shared between threads.
// After a failed call a handle is not reusable (libjpeg is left mid-header), so failures drop it.
TjHandle& thread_decompressor() {
  thread_local TjHandle handle;
  if (!handle) handle.reset(tjInitDecompress());
  if (!handle) throw Error("libturbojpeg: cannot create a decompressor (out of memory?)");
  return handle;
}

bool is_jpeg(const std::vector<uint8_t>& b) { return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

bool is_png(const std::vector<uint8_t>& b) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  return b.size() >= 8 && std::memcmp(b.data(), kSignature, 8) == 0;
}

void check_size(int64_t height, int64_t width, const std::string& path) {
  if (height < 1 || width < 1 || height > kMaxSide || width > kMaxSide)
    throw Error(path + ": image size " + std::to_string(width) + "x" + std::to_string(height) +
                " is outside 1.." + std::to_string(kMaxSide) + " pixels per side; the file is corrupt");
}

// Photoshop writes CMYK JPEGs with inverted values (255 = no ink), and so do nearly all CMYK JPEGs in the wild,
// so a stored value v means ink 255 - v and the ink-free share of each primary is v / 255.
void cmyk_to_rgb(const std::vector<uint8_t>& cmyk, RgbImage& image) {
  const size_t pixels = static_cast<size_t>(image.height * image.width);
  image.pixels.resize(pixels * 3);
  for (size_t p = 0; p < pixels; ++p) {
    const unsigned k = cmyk[4 * p + 3];
    for (int c = 0; c < 3; ++c) image.pixels[3 * p + c] = static_cast<uint8_t>((cmyk[4 * p + c] * k + 127) / 255);
  }
}

RgbImage decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& path) {
  TjHandle& handle = thread_decompressor();
  tjhandle tj = handle.get();
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, bytes.data(), static_cast<unsigned long>(bytes.size()), &width, &height, &subsampling,
                          &colorspace) != 0) {
    const std::string message = tjGetErrorStr2(tj);
    handle.reset();
    throw Error(path + ": not a readable JPEG (" + message + ")");
  }
  check_size(height, width, path);
  RgbImage image;
  image.height = height;
  image.width = width;
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  std::vector<uint8_t> cmyk_pixels;
  std::vector<uint8_t>& out = cmyk ? cmyk_pixels : image.pixels;
  out.resize(static_cast<size_t>(height) * width * (cmyk ? 4 : 3));
  // Grayscale and YCbCr JPEGs decode straight to RGB; libjpeg cannot convert CMYK/YCCK to RGB itself.
  if (tjDecompress2(tj, bytes.data(), static_cast<unsigned long>(bytes.size()), out.data(), width, 0, height,
                    cmyk ? TJPF_CMYK : TJPF_RGB, 0) != 0) {
    const std::string message = tjGetErrorStr2(tj);
    const bool whole = tjGetErrorCode(tj) == TJERR_WARNING && message.find("Premature end") == std::string::npos;
    handle.reset();
    // A warning still yields a whole image, except when the data ended early (the rest is left grey).
    if (!whole) throw Error(path + ": corrupt or truncated JPEG (" + message + ")");
  }
  if (cmyk) cmyk_to_rgb(cmyk_pixels, image);
  return image;
}

RgbImage decode_png(const std::vector<uint8_t>& bytes, const std::string& path) {
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size()))
    throw Error(path + ": not a readable PNG (" + png.message + ")");
  RgbImage image;
  image.height = png.height;
  image.width = png.width;
  try {
    check_size(image.height, image.width, path);
  } catch (...) {
    png_image_free(&png);
    throw;
  }
  png.format = PNG_FORMAT_RGB;  // gray, palette and 16-bit convert; alpha composites onto black
  image.pixels.resize(static_cast<size_t>(image.height * image.width * 3));
  if (!png_image_finish_read(&png, nullptr, image.pixels.data(), 0, nullptr))
    throw Error(path + ": corrupt or truncated PNG (" + png.message + ")");
  return image;
}

}  // namespace

RgbImage decode_image(const std::vector<uint8_t>& bytes, const std::string& path) {
  if (is_jpeg(bytes)) return decode_jpeg(bytes, path);
  if (is_png(bytes)) return decode_png(bytes, path);
  throw Error(path + ": not a JPEG or PNG image (" +
              (bytes.empty() ? std::string("the file is empty") : "unrecognised signature") +
              "); remove it from the image folder or set data.skip_corrupt = true");
}

RgbImage read_image_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(path + ": cannot open the image file");
  const std::streamoff size = in.tellg();
  std::vector<uint8_t> bytes(static_cast<size_t>(std::max<std::streamoff>(size, 0)));
  in.seekg(0);
  if (!bytes.empty() && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw Error(path + ": cannot read the image file");
  return decode_image(bytes, path);
}

std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int64_t height, int64_t width, int components, int quality) {
  if (components != 1 && components != 3 && components != 4)
    throw Error("encode_jpeg: " + std::to_string(components) + " components per pixel; use 1, 3 or 4");
  if (quality < 1 || quality > 100) throw Error("encode_jpeg: quality " + std::to_string(quality) + " is not 1..100");
  check_size(height, width, "encode_jpeg");
  TjHandle tj(tjInitCompress());
  if (!tj) throw Error("libturbojpeg: cannot create a compressor (out of memory?)");
  std::vector<uint8_t> inverted;
  if (components == 4) {  // Adobe-style: stored = 255 - ink, which decode_image inverts back
    inverted.assign(pixels, pixels + height * width * 4);
    for (uint8_t& v : inverted) v = static_cast<uint8_t>(255 - v);
    pixels = inverted.data();
  }
  const int format = components == 1 ? TJPF_GRAY : components == 3 ? TJPF_RGB : TJPF_CMYK;
  const int subsampling = components == 1 ? TJSAMP_GRAY : TJSAMP_444;
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  if (tjCompress2(tj.get(), pixels, static_cast<int>(width), 0, static_cast<int>(height), format, &jpeg, &size,
                  subsampling, quality, 0) != 0) {
    const std::string message = tjGetErrorStr2(tj.get());
    tjFree(jpeg);
    throw Error("encode_jpeg: " + message);
  }
  std::vector<uint8_t> out(jpeg, jpeg + size);
  tjFree(jpeg);
  return out;
}

std::vector<uint8_t> encode_png_rgb(const uint8_t* pixels, int64_t height, int64_t width) {
  check_size(height, width, "encode_png_rgb");
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(width);
  png.height = static_cast<png_uint_32>(height);
  png.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, pixels, 0, nullptr))
    throw Error(std::string("encode_png_rgb: ") + png.message);
  std::vector<uint8_t> out(size);
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, pixels, 0, nullptr))
    throw Error(std::string("encode_png_rgb: ") + png.message);
  out.resize(size);
  return out;
}

}  // namespace fractrain
