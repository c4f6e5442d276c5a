// .npz = zip archive of .npy files. Zip structure read from the central directory (local headers
// may carry zero sizes when a data descriptor follows); only the "stored" method is supported, which
// is what numpy.savez writes (savez_compressed deflates: we say so instead of guessing).
#include "metrics/npz.hpp"

#include <cstdint>
#include <cstring>
#include <regex>

#include "face2scene/core.hpp"

namespace face2scene::metrics::detail {
namespace {

uint32_t rd32(const std::string& b, size_t off) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[off + i]);
  return v;
}
uint16_t rd16(const std::string& b, size_t off) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[off]) | (static_cast<uint8_t>(b[off + 1]) << 8));
}

}  // namespace

NpyArray parse_npy(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw FormatError(name + ": not a .npy array");
  const int major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0, header_off = 0;
  if (major == 1) {
    header_len = rd16(bytes, 8);
    header_off = 10;
  } else {
    header_len = rd32(bytes, 8);
    header_off = 12;
  }
  if (header_off + header_len > bytes.size()) throw FormatError(name + ": truncated .npy header");
  const std::string header = bytes.substr(header_off, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([<>|]?)([fi])(\\d)'"))) {
    throw FormatError(name + ": unsupported .npy dtype in header " + header);
  }
  if (m[1] == ">") throw FormatError(name + ": big-endian .npy arrays are not supported");
  const char kind = m[2].str()[0];
  const int itemsize = std::stoi(m[3]);
  if (kind != 'f' || (itemsize != 8 && itemsize != 4)) throw FormatError(name + ": only float32/float64 .npy supported");
  const bool fortran = header.find("'fortran_order': True") != std::string::npos;
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)"))) throw FormatError(name + ": no shape in .npy header");
  NpyArray a;
  const std::string dims = m[1];
  std::regex num("\\d+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it) {
    a.shape.push_back(std::stol(it->str()));
  }
  size_t count = 1;
  for (long d : a.shape) count *= static_cast<size_t>(d);
  const size_t data_off = header_off + header_len;
  if (data_off + count * itemsize != bytes.size()) throw FormatError(name + ": .npy data size does not match its shape");
  std::vector<double> flat(count);
  for (size_t i = 0; i < count; ++i) {
    if (itemsize == 8) {
      std::memcpy(&flat[i], bytes.data() + data_off + 8 * i, 8);
    } else {
      float f;
      std::memcpy(&f, bytes.data() + data_off + 4 * i, 4);
      flat[i] = f;
    }
  }
  if (fortran && a.shape.size() == 2) {
    const long r = a.shape[0], c = a.shape[1];
    a.data.resize(count);
    for (long i = 0; i < r; ++i)
      for (long j = 0; j < c; ++j) a.data[i * c + j] = flat[j * r + i];
  } else if (fortran && a.shape.size() > 2) {
    throw FormatError(name + ": fortran-order arrays of more than 2 dimensions are not supported");
  } else {
    a.data = std::move(flat);
  }
  return a;
}

std::map<std::string, NpyArray> load_npz(const std::string& path) {
  const std::string b = read_file(path);
  // End of central directory: signature 0x06054b50 within the last 64 KiB + 22 bytes.
  size_t eocd = std::string::npos;
  if (b.size() >= 22) {
    for (size_t i = b.size() - 22;; --i) {
      if (rd32(b, i) == 0x06054b50u) {
        eocd = i;
        break;
      }
      if (i == 0 || b.size() - i > 65557) break;
    }
  }
  if (eocd == std::string::npos) throw FormatError(path + ": not a zip/.npz archive (no end of central directory)");
  const uint16_t entries = rd16(b, eocd + 10);
  size_t off = rd32(b, eocd + 16);
  std::map<std::string, NpyArray> out;
  for (int e = 0; e < entries; ++e) {
    if (off + 46 > b.size() || rd32(b, off) != 0x02014b50u) throw FormatError(path + ": corrupt zip central directory");
    const uint16_t method = rd16(b, off + 10);
    const uint32_t csize = rd32(b, off + 20);
    const uint16_t nlen = rd16(b, off + 28), xlen = rd16(b, off + 30), clen = rd16(b, off + 32);
    const uint32_t local = rd32(b, off + 42);
    const std::string fname = b.substr(off + 46, nlen);
    off += 46 + nlen + xlen + clen;
    if (method != 0) {
      throw FormatError(path + ": member " + fname + " is compressed (method " + std::to_string(method) +
                        "); re-save it with numpy.savez (uncompressed)");
    }
    if (local + 30 > b.size() || rd32(b, local) != 0x04034b50u) throw FormatError(path + ": corrupt zip local header");
    const size_t data = local + 30 + rd16(b, local + 26) + rd16(b, local + 28);
    if (data + csize > b.size()) throw FormatError(path + ": member " + fname + " is truncated");
    std::string key = fname;
    if (key.size() > 4 && key.compare(key.size() - 4, 4, ".npy") == 0) key.resize(key.size() - 4);
    out[key] = parse_npy(b.substr(data, csize), path + ":" + fname);
  }
  return out;
}

}  // namespace face2scene::metrics::detail
