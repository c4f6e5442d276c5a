#include "face2scene/ncnn.hpp"

#include <cstring>
#include <limits>
#include <set>
#include <sstream>

#include "face2scene/core.hpp"

namespace face2scene::ncnn {
namespace {

std::string where(const std::string& file, int line) { return file + ":" + std::to_string(line); }

ParamValue parse_value(const std::string& text, bool is_array, const std::string& ctx) {
  ParamValue v;
  v.is_array = is_array;
  std::vector<std::string> parts;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) parts.push_back(item);
  if (parts.empty()) throw FormatError(ctx + ": empty parameter value");
  size_t first = 0;
  if (is_array) {
    // "count,v1,...,vcount"
    int count = 0;
    try {
      count = std::stoi(parts[0]);
    } catch (const std::exception&) {
      throw FormatError(ctx + ": array parameter has no count ('" + text + "')");
    }
    if (count < 0 || static_cast<size_t>(count) != parts.size() - 1) {
      throw FormatError(ctx + ": array parameter says " + parts[0] + " values but has " +
                        std::to_string(parts.size() - 1));
    }
    first = 1;
  } else if (parts.size() != 1) {
    throw FormatError(ctx + ": scalar parameter holds a list ('" + text + "')");
  }
  for (size_t i = first; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.find_first_of(".eE") != std::string::npos) v.is_float = true;
    try {
      size_t used = 0;
      v.values.push_back(std::stof(p, &used));
      if (used != p.size()) throw std::invalid_argument(p);
    } catch (const std::exception&) {
      throw FormatError(ctx + ": parameter value '" + p + "' is not a number");
    }
  }
  return v;
}

// Sequential reader over the .bin bytes with ncnn's two blob kinds.
class BinReader {
 public:
  BinReader(const std::string& bytes, std::string name) : b_(bytes), name_(std::move(name)) {}
  size_t offset() const { return off_; }
  size_t remaining() const { return b_.size() - off_; }

  // ncnn ModelBin::load(w, type=1): raw float32, no tag.
  Blob raw_fp32(int64_t n, const std::string& what) {
    need_count(n, 4, what);
    Blob blob{torch::empty({n}, torch::kFloat32), "raw_fp32"};
    if (n > 0) std::memcpy(blob.data.data_ptr<float>(), b_.data() + off_, static_cast<size_t>(n) * 4);
    off_ += static_cast<size_t>(n) * 4;
    return blob;
  }

  // ncnn ModelBin::load(w, type=0): a 4-byte tag picks the storage.
  Blob tagged(int64_t n, const std::string& what) {
    need_count(n, 1, what);  // every storage needs at least a byte per value
    need(4, what + " (storage tag)");
    uint32_t tag = 0;
    std::memcpy(&tag, b_.data() + off_, 4);
    const size_t tag_off = off_;
    off_ += 4;
    const size_t count = static_cast<size_t>(n);
    if (tag == 0x01306B47u) {  // fp16, padded to 4 bytes
      const size_t bytes = count * 2;
      need(align4(bytes), what + " (fp16)");
      auto half = torch::empty({n}, torch::kFloat16);
      if (bytes) std::memcpy(half.data_ptr(), b_.data() + off_, bytes);
      off_ += align4(bytes);
      return {half.to(torch::kFloat32), "fp16"};
    }
    if (tag == 0x000D4B38u) {
      throw FormatError(name_ + ": " + what + " is stored as int8 (tag at byte " + std::to_string(tag_off) +
                        "), which face2scene does not read");
    }
    if (tag == 0x0002C056u) {  // fp32 "raw data with extra scaling", same layout as fp32
      Blob blob = raw_fp32(n, what);
      blob.stored_as = "fp32";
      return blob;
    }
    const unsigned char* t = reinterpret_cast<const unsigned char*>(b_.data() + tag_off);
    if (t[0] + t[1] + t[2] + t[3] == 0) {  // plain fp32
      Blob blob = raw_fp32(n, what);
      blob.stored_as = "fp32";
      return blob;
    }
    // Otherwise the tag itself starts a 256-entry fp32 table, then uint8 indices (padded).
    off_ = tag_off;
    need(256 * 4, what + " (quantisation table)");
    float table[256];
    std::memcpy(table, b_.data() + off_, sizeof(table));
    off_ += sizeof(table);
    need(align4(count), what + " (table indices)");
    Blob blob{torch::empty({n}, torch::kFloat32), "table8"};
    float* dst = blob.data.data_ptr<float>();
    const auto* idx = reinterpret_cast<const unsigned char*>(b_.data() + off_);
    for (size_t i = 0; i < count; ++i) dst[i] = table[idx[i]];
    off_ += align4(count);
    return blob;
  }

 private:
  static size_t align4(size_t n) { return (n + 3) & ~size_t(3); }
  // A count from the .param: not negative, and its bytes (at `size` each) within the file, checked
  // before any multiplication can wrap.
  void need_count(int64_t n, size_t size, const std::string& what) const {
    if (n < 0) throw FormatError(name_ + ": " + what + " has a negative size (" + std::to_string(n) + ")");
    if (static_cast<uint64_t>(n) > remaining() / size) need(remaining() + 1, what);
    need(static_cast<size_t>(n) * size, what);
  }
  void need(size_t n, const std::string& what) const {
    if (n > remaining()) {
      throw FormatError(name_ + ": file ends at byte " + std::to_string(b_.size()) + " while reading " + what +
                        " (needs " + std::to_string(n) + " bytes at " + std::to_string(off_) +
                        "); the file is truncated or does not belong to this .param");
    }
  }
  const std::string& b_;
  std::string name_;
  size_t off_ = 0;
};

// Layer types known to carry no weights in the .bin. Anything else that we do not know either
// is assumed weightless; the byte count check at the end catches a wrong assumption.
void read_layer_weights(Layer& l, BinReader& r) {
  const std::string what = "layer '" + l.name + "' (" + l.type + ")";
  auto need_param = [&](int key) {
    if (!l.has(key)) throw FormatError(what + " lacks parameter " + std::to_string(key));
    return l.get_int(key, 0);
  };
  const std::string& t = l.type;
  if (t == "Convolution" || t == "ConvolutionDepthWise" || t == "Deconvolution" ||
      t == "DeconvolutionDepthWise" || t == "Convolution1D" || t == "Convolution3D") {
    if (l.get_int(8, 0) != 0) throw FormatError(what + " is int8-quantised (8=int8_scale_term), unsupported");
    const int n_out = need_param(0);
    l.weights.push_back(r.tagged(need_param(6), what + " weight"));
    if (l.get_int(5, 0) != 0) l.weights.push_back(r.raw_fp32(n_out, what + " bias"));
  } else if (t == "InnerProduct") {
    if (l.get_int(8, 0) != 0) throw FormatError(what + " is int8-quantised, unsupported");
    const int n_out = need_param(0);
    l.weights.push_back(r.tagged(need_param(2), what + " weight"));
    if (l.get_int(1, 0) != 0) l.weights.push_back(r.raw_fp32(n_out, what + " bias"));
  } else if (t == "PReLU") {
    l.weights.push_back(r.raw_fp32(l.get_int(0, 0), what + " slope"));
  } else if (t == "BatchNorm") {
    const int c = need_param(0);
    for (const char* part : {"slope", "mean", "var", "bias"}) l.weights.push_back(r.raw_fp32(c, what + " " + part));
  } else if (t == "Scale") {
    const int n = l.get_int(0, 0);
    if (n == -233) return;  // scale comes from a second input blob
    l.weights.push_back(r.raw_fp32(n, what + " scale"));
    if (l.get_int(1, 0) != 0) l.weights.push_back(r.raw_fp32(n, what + " bias"));
  } else if (t == "InstanceNorm" || t == "GroupNorm" || t == "LayerNorm") {
    const int n = t == "GroupNorm" ? need_param(1) : need_param(0);
    if (l.get_int(t == "GroupNorm" ? 3 : 2, 1) != 0) {
      l.weights.push_back(r.raw_fp32(n, what + " gamma"));
      l.weights.push_back(r.raw_fp32(n, what + " beta"));
    }
  } else if (t == "Normalize") {
    l.weights.push_back(r.raw_fp32(need_param(3), what + " scale"));
  } else if (t == "Embed") {
    const int n_out = need_param(0);
    l.weights.push_back(r.tagged(need_param(3), what + " weight"));
    if (l.get_int(2, 0) != 0) l.weights.push_back(r.raw_fp32(n_out, what + " bias"));
  } else if (t == "MemoryData") {
    int64_t n = 1;
    for (int key : {0, 1, 11, 2}) {
      if (__builtin_mul_overflow(n, int64_t{std::max(1, l.get_int(key, 0))}, &n)) {
        throw FormatError(what + " has an absurd size");
      }
    }
    l.weights.push_back(r.raw_fp32(n, what + " data"));
  }
}

}  // namespace

int Layer::get_int(int key, int fallback) const {
  auto it = params.find(key);
  if (it == params.end() || it->second.values.empty()) return fallback;
  const float v = it->second.values[0];
  // Out-of-range (or NaN) floats would make the cast undefined: saturate instead.
  if (!(v > -2147483648.0f)) return std::numeric_limits<int>::min();
  if (!(v < 2147483648.0f)) return std::numeric_limits<int>::max();
  return static_cast<int>(v);
}
float Layer::get_float(int key, float fallback) const {
  auto it = params.find(key);
  if (it == params.end() || it->second.values.empty()) return fallback;
  return it->second.values[0];
}
std::vector<float> Layer::get_array(int key) const {
  auto it = params.find(key);
  return it == params.end() ? std::vector<float>{} : it->second.values;
}

const Layer& Model::layer(const std::string& name) const {
  for (const auto& l : layers) {
    if (l.name == name) return l;
  }
  throw FormatError(source + ": no layer named '" + name + "'");
}

std::vector<const Layer*> Model::layers_of_type(const std::string& type) const {
  std::vector<const Layer*> out;
  for (const auto& l : layers) {
    if (l.type == type) out.push_back(&l);
  }
  return out;
}

Model parse_param(const std::string& text, const std::string& name) {
  Model m;
  m.source = name;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  auto next_line = [&]() -> bool {
    while (std::getline(in, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) return true;
    }
    return false;
  };
  if (!next_line() || line.substr(0, 7) != "7767517") {
    throw FormatError(name + ": not an ncnn .param file (first line is not the magic 7767517)");
  }
  int layer_count = 0, blob_count = 0;
  if (!next_line() || !(std::istringstream(line) >> layer_count >> blob_count) || layer_count <= 0) {
    throw FormatError(where(name, line_no) + ": expected 'layer_count blob_count'");
  }
  std::set<std::string> names;
  while (next_line()) {
    std::istringstream ls(line);
    Layer l;
    l.line = line_no;
    int n_in = -1, n_out = -1;
    if (!(ls >> l.type >> l.name >> n_in >> n_out) || n_in < 0 || n_out < 0) {
      throw FormatError(where(name, line_no) + ": expected 'type name n_in n_out ...'");
    }
    const std::string ctx = where(name, line_no) + " (layer '" + l.name + "')";
    for (int i = 0; i < n_in + n_out; ++i) {
      std::string blob;
      if (!(ls >> blob)) throw FormatError(ctx + ": lists fewer blobs than its counts say");
      (i < n_in ? l.inputs : l.outputs).push_back(blob);
    }
    std::string kv;
    while (ls >> kv) {
      const size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) throw FormatError(ctx + ": '" + kv + "' is not key=value");
      int key = 0;
      try {
        key = std::stoi(kv.substr(0, eq));
      } catch (const std::exception&) {
        throw FormatError(ctx + ": parameter key '" + kv.substr(0, eq) + "' is not an integer");
      }
      const bool is_array = key <= -23300;
      if (is_array) key = -key - 23300;
      l.params[key] = parse_value(kv.substr(eq + 1), is_array, ctx + " parameter " + std::to_string(key));
    }
    if (!names.insert(l.name).second) throw FormatError(ctx + ": layer name is used twice");
    m.layers.push_back(std::move(l));
  }
  if (static_cast<int>(m.layers.size()) != layer_count) {
    throw FormatError(name + ": header says " + std::to_string(layer_count) + " layers, file has " +
                      std::to_string(m.layers.size()));
  }
  return m;
}

void read_weights(Model& model, const std::string& bytes, const std::string& name) {
  BinReader r(bytes, name);
  for (auto& l : model.layers) {
    l.weights.clear();
    read_layer_weights(l, r);
  }
  if (r.remaining() != 0) {
    throw FormatError(name + ": " + std::to_string(r.remaining()) + " bytes left after the last layer's weights (read " +
                      std::to_string(r.offset()) + " of " + std::to_string(bytes.size()) +
                      "); the .bin does not belong to " + model.source);
  }
  model.bin_bytes = bytes.size();
}

Model load(const std::string& param_path, const std::string& bin_path) {
  Model m = parse_param(read_file(param_path), param_path);
  read_weights(m, read_file(bin_path), bin_path);
  return m;
}

torch::Tensor conv_weight(const Layer& l) {
  if (l.weights.empty()) throw FormatError("layer '" + l.name + "' has no weights loaded");
  const int64_t n_out = l.get_int(0, 0);
  const int64_t kw = l.get_int(1, 0);
  const int64_t kh = l.get_int(11, kw);
  const int64_t groups = (l.type == "ConvolutionDepthWise" || l.type == "DeconvolutionDepthWise") ? l.get_int(7, 1) : 1;
  const int64_t numel = l.weights[0].data.numel();
  if (n_out <= 0 || kw <= 0 || kh <= 0 || numel % (n_out * kw * kh) != 0) {
    throw FormatError("layer '" + l.name + "': weight of " + std::to_string(numel) + " values does not split into " +
                      std::to_string(n_out) + " outputs of " + std::to_string(kh) + "x" + std::to_string(kw));
  }
  const int64_t per_group_in = numel / (n_out * kw * kh);
  (void)groups;  // depthwise: per_group_in is already in/groups
  return l.weights[0].data.view({n_out, per_group_in, kh, kw});
}

torch::Tensor conv_bias(const Layer& l) {
  return l.weights.size() > 1 ? l.weights[1].data : torch::Tensor();
}

}  // namespace face2scene::ncnn
