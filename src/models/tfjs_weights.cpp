// TF.js weights: manifest + shards, dequantised as TF.js's decodeWeights does.
#include "models/tfjs_weights.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>

#include "face2scene/core.hpp"

namespace face2scene {

namespace {

std::string folder_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> read_tfjs_weights(const std::string& manifest_path) {
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(read_file(manifest_path));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(manifest_path + ": not a TF.js weights manifest (" + e.what() + ")");
  }
  if (!manifest.is_array() || manifest.empty()) throw FormatError(manifest_path + ": expected a JSON array of weight groups");
  const std::string dir = folder_of(manifest_path);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& group : manifest) {
    if (!group.contains("paths") || !group.contains("weights")) {
      throw FormatError(manifest_path + ": a weight group lacks 'paths' or 'weights'");
    }
    // A group's shards are one byte stream.
    std::string bytes;
    for (const auto& p : group["paths"]) bytes += read_file(dir + "/" + p.get<std::string>());
    const std::string source = dir + "/" + group["paths"][0].get<std::string>();
    size_t offset = 0;
    for (const auto& w : group["weights"]) {
      const std::string name = w.at("name").get<std::string>();
      const std::string dtype = w.at("dtype").get<std::string>();
      std::vector<int64_t> shape = w.at("shape").get<std::vector<int64_t>>();
      int64_t count = 1;
      for (auto s : shape) count *= s;
      if (dtype != "float32" && dtype != "int32")
        throw FormatError(manifest_path + ": weight '" + name + "' has dtype " + dtype + ", expected float32 or int32");
      std::vector<float> values(static_cast<size_t>(count));
      std::string qdtype = dtype;
      double scale = 1.0, min = 0.0;
      if (w.contains("quantization")) {
        const auto& q = w["quantization"];
        qdtype = q.at("dtype").get<std::string>();
        if (qdtype == "uint8" || qdtype == "uint16") {
          if (!q.contains("scale") || !q.contains("min")) {
            throw FormatError(manifest_path + ": weight '" + name + "' is " + qdtype + "-quantised without scale/min");
          }
          scale = q["scale"].get<double>();
          min = q["min"].get<double>();
        } else if (qdtype != "float16") {
          throw FormatError(manifest_path + ": weight '" + name + "' has unsupported quantisation " + qdtype);
        }
      }
      const size_t elem = qdtype == "uint8" ? 1 : (qdtype == "float32" || qdtype == "int32" ? 4 : 2);
      const size_t nbytes = elem * static_cast<size_t>(count);
      if (offset + nbytes > bytes.size()) {
        throw FormatError(source + ": too short for weight '" + name + "' (needs " + std::to_string(offset + nbytes) +
                          " bytes, has " + std::to_string(bytes.size()) + ")");
      }
      const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
      for (int64_t i = 0; i < count; ++i) {
        // Like TF.js's decodeWeights: v * scale + min evaluated in double, stored as float32.
        if (qdtype == "uint8") {
          values[i] = static_cast<float>(p[i] * scale + min);
        } else if (qdtype == "uint16") {
          uint16_t v = static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
          values[i] = static_cast<float>(v * scale + min);
        } else if (qdtype == "float16") {
          values[i] = half_to_float(static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8)));
        } else {
          uint32_t bits = static_cast<uint32_t>(p[4 * i]) | (static_cast<uint32_t>(p[4 * i + 1]) << 8) |
                          (static_cast<uint32_t>(p[4 * i + 2]) << 16) | (static_cast<uint32_t>(p[4 * i + 3]) << 24);
          if (qdtype == "int32") {
            int32_t v;
            std::memcpy(&v, &bits, 4);
            values[i] = static_cast<float>(v);
          } else {
            std::memcpy(&values[i], &bits, 4);
          }
        }
      }
      offset += nbytes;
      auto t = torch::from_blob(values.data(), shape, torch::kFloat32).clone();
      if (dtype == "int32") t = t.round().to(torch::kInt32);
      out.emplace_back(name, t);
    }
    if (offset != bytes.size()) {
      throw FormatError(source + ": " + std::to_string(bytes.size() - offset) + " bytes left over after the manifest's weights");
    }
  }
  return out;
}

}  // namespace face2scene
