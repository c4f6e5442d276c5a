#include "face2scene/safetensors.hpp"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "face2scene/core.hpp"

namespace face2scene {
namespace {
using nlohmann::json;

struct DtypeInfo {
  const char* name;
  torch::Dtype dtype;
  size_t size;
};
const DtypeInfo kDtypes[] = {
    {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2}, {"BF16", torch::kBFloat16, 2},
    {"F64", torch::kFloat64, 8}, {"I64", torch::kInt64, 8},   {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo& info_for(torch::Dtype d) {
  for (const auto& i : kDtypes) {
    if (i.dtype == d) return i;
  }
  throw ArgumentError(std::string("safetensors: unsupported dtype ") + c10::toString(d));
}

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? "," : "") << s[i];
  o << "]";
  return o.str();
}
}  // namespace

namespace {
// The 8-byte little-endian length of the JSON header at the start of `first8`.
uint64_t header_length(const char* first8) {
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(first8[i]);
  return len;
}
void check_header_length(uint64_t header_len, uint64_t file_size, const std::string& name) {
  if (header_len > file_size - 8 || header_len > (100u << 20)) {
    throw FormatError(name + ": safetensors header length " + std::to_string(header_len) + " exceeds the file");
  }
}
json parse_header(const char* begin, const char* end, const std::string& name) {
  json header;
  try {
    header = json::parse(begin, end);
  } catch (const std::exception& e) {
    throw FormatError(name + ": safetensors header is not JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw FormatError(name + ": safetensors header is not a JSON object");
  return header;
}
Metadata metadata_of(const json& header) {
  Metadata out;
  if (auto it = header.find("__metadata__"); it != header.end())
    for (auto m = it->begin(); m != it->end(); ++m) out[m.key()] = m->is_string() ? m->get<std::string>() : m->dump();
  return out;
}
}  // namespace

SafeTensors parse_safetensors(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 8) throw FormatError(name + ": too short to be a safetensors file");
  const uint64_t header_len = header_length(bytes.data());
  check_header_length(header_len, bytes.size(), name);
  const json header = parse_header(bytes.data() + 8, bytes.data() + 8 + header_len, name);
  const size_t data_start = 8 + header_len;
  const size_t data_size = bytes.size() - data_start;
  SafeTensors out;
  out.metadata = metadata_of(header);
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& key = it.key();
    try {
      const std::string dt = it->at("dtype").get<std::string>();
      const DtypeInfo* di = nullptr;
      for (const auto& i : kDtypes) {
        if (dt == i.name) di = &i;
      }
      if (!di) throw FormatError(name + ": tensor '" + key + "' has unsupported dtype " + dt);
      std::vector<int64_t> shape = it->at("shape").get<std::vector<int64_t>>();
      const auto offs = it->at("data_offsets").get<std::vector<uint64_t>>();
      if (offs.size() != 2 || offs[0] > offs[1] || offs[1] > data_size) {
        throw FormatError(name + ": tensor '" + key + "' has data offsets outside the file");
      }
      uint64_t numel = 1, nbytes = 0;
      bool overflow = false;
      for (auto s : shape) {
        if (s < 0) throw FormatError(name + ": tensor '" + key + "' has a negative dimension");
        overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(s), &numel);
      }
      overflow = overflow || __builtin_mul_overflow(numel, uint64_t{di->size}, &nbytes);
      if (overflow || nbytes != offs[1] - offs[0]) {
        throw FormatError(name + ": tensor '" + key + "' shape " + shape_str(shape) + " does not match its " +
                          std::to_string(offs[1] - offs[0]) + " bytes");
      }
      auto t = torch::empty(shape, torch::TensorOptions().dtype(di->dtype));
      if (numel) std::memcpy(t.data_ptr(), bytes.data() + data_start + offs[0], offs[1] - offs[0]);
      out.tensors[key] = t;
    } catch (const json::exception& e) {
      throw FormatError(name + ": tensor '" + key + "' has a malformed header entry (" + e.what() + ")");
    }
  }
  return out;
}

SafeTensors load_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

Metadata read_safetensors_metadata(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IoError(path + ": cannot open");
  const auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  char first8[8];
  if (size < 8 || !in.read(first8, 8)) throw FormatError(path + ": too short to be a safetensors file");
  const uint64_t header_len = header_length(first8);
  check_header_length(header_len, size, path);
  std::string header(header_len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len))) throw FormatError(path + ": truncated header");
  return metadata_of(parse_header(header.data(), header.data() + header.size(), path));
}

std::string serialize_safetensors(const TensorMap& tensors, const Metadata& metadata,
                                  c10::optional<torch::Dtype> store_dtype) {
  json header = json::object();
  if (!metadata.empty()) {
    json m = json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  std::vector<torch::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [key, tensor] : tensors) {  // std::map: sorted keys, as the format recommends
    if (!tensor.defined()) throw ArgumentError("safetensors: tensor '" + key + "' is undefined");
    auto t = tensor.detach().to(torch::kCPU);
    if (store_dtype && t.is_floating_point()) t = t.to(*store_dtype);
    t = t.contiguous();
    const DtypeInfo& di = info_for(t.scalar_type());
    const uint64_t n = static_cast<uint64_t>(t.numel()) * di.size;
    header[key] = {{"dtype", di.name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    blobs.push_back(t);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data to 8 bytes
  std::string out(8, '\0');
  uint64_t hl = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((hl >> (8 * i)) & 0xFF);
  out += h;
  out.reserve(out.size() + offset);
  for (const auto& t : blobs) {
    out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  }
  return out;
}

void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata,
                      c10::optional<torch::Dtype> store_dtype) {
  write_file_atomically(path, serialize_safetensors(tensors, metadata, store_dtype));
}

TensorMap state_dict(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& p : module.named_parameters(true)) out[p.key()] = p.value();
  for (const auto& b : module.named_buffers(true)) out[b.key()] = b.value();
  return out;
}

void load_state_dict_strict(torch::nn::Module& module, const TensorMap& tensors, const std::string& source) {
  TensorMap own = state_dict(module);
  std::vector<std::string> missing, unexpected, wrong;
  for (const auto& [k, v] : own) {
    auto it = tensors.find(k);
    if (it == tensors.end()) {
      missing.push_back(k);
    } else if (it->second.sizes() != v.sizes()) {
      wrong.push_back(k + " (file " + shape_str(it->second.sizes()) + ", model " + shape_str(v.sizes()) + ")");
    }
  }
  for (const auto& [k, v] : tensors) {
    if (!own.count(k)) unexpected.push_back(k);
  }
  if (!missing.empty() || !unexpected.empty() || !wrong.empty()) {
    std::ostringstream msg;
    msg << source << ": weights do not fit the model:";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      msg << " " << what << " " << v.size() << " key(s):";
      for (size_t i = 0; i < v.size(); ++i) msg << (i ? ", " : " ") << v[i];
      msg << ";";
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("wrong shape", wrong);
    throw FormatError(msg.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& [k, v] : own) v.copy_(tensors.at(k).to(v.device(), v.scalar_type()));
}

void check_arch(const SafeTensors& st, const std::string& arch, const std::string& source) {
  auto it = st.metadata.find("arch");
  if (it == st.metadata.end()) throw FormatError(source + ": no 'arch' in the safetensors metadata (expected " + arch + ")");
  if (it->second != arch) throw FormatError(source + ": holds weights for '" + it->second + "', expected '" + arch + "'");
}

void check_version(const SafeTensors& st, const std::string& version, const std::string& source,
                   const std::string& what, const std::string& remedy) {
  auto v = st.metadata.find("version");
  if (v == st.metadata.end() || v->second != version)
    throw FormatError(source + ": " + what + " version '" + (v == st.metadata.end() ? std::string("<none>") : v->second) +
                      "', expected '" + version + "'; " + remedy);
}

int64_t metadata_int(const Metadata& m, const std::string& key, const std::string& source) {
  auto it = m.find(key);
  if (it == m.end()) throw FormatError(source + ": metadata '" + key + "' missing");
  try {
    size_t used = 0;
    const int64_t v = std::stoll(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument("trailing characters");
    return v;
  } catch (const std::exception&) {
    throw FormatError(source + ": metadata '" + key + "' is not an integer: '" + it->second + "'");
  }
}

}  // namespace face2scene
