// A minimal pickle virtual machine: only the opcodes that torch.save (protocol 2) emits for a state
// dict. Anything else is reported by opcode, so an unexpected file fails loudly instead of loading
// something wrong.
#include "metrics/torch_legacy.hpp"

#include <cstring>
#include <memory>

#include "face2scene/core.hpp"

namespace face2scene::metrics::detail {
namespace {

struct Obj;
using P = std::shared_ptr<Obj>;
struct Obj {
  enum Kind { kNone, kInt, kFloat, kStr, kBool, kList, kTuple, kDict, kGlobal, kStorage, kTensor, kMark, kOther } kind = kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;                       // str / global name / storage key
  std::vector<P> items;                // list / tuple
  std::vector<std::pair<P, P>> dict;   // dict
  // storage: dtype from the global ("torch FloatStorage"), element count
  std::string storage_type;
  int64_t numel = 0;
  // tensor
  P storage;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};
P make(Obj::Kind k) {
  auto p = std::make_shared<Obj>();
  p->kind = k;
  return p;
}

class Unpickler {
 public:
  Unpickler(const std::string& b, size_t pos, const std::string& src) : b_(b), pos_(pos), src_(src) {}
  size_t pos() const { return pos_; }

  P load() {
    stack_.clear();
    memo_.clear();
    for (;;) {
      const uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;                         // PROTO
        case 0x95: pos_ += 8; break;                    // FRAME
        case '.': return pop();                         // STOP
        case '(': stack_.push_back(make(Obj::kMark)); break;
        case 'N': stack_.push_back(make(Obj::kNone)); break;
        case 0x88: case 0x89: {                         // NEWTRUE / NEWFALSE
          auto p = make(Obj::kBool);
          p->i = op == 0x88;
          stack_.push_back(p);
          break;
        }
        case 'K': push_int(u8()); break;                // BININT1
        case 'M': push_int(static_cast<int64_t>(le(2))); break;  // BININT2
        case 'J': push_int(static_cast<int32_t>(le(4))); break;
        case 0x8a: {                                    // LONG1
          const int n = u8();
          if (n > 8) {  // e.g. the file magic: kept as raw little-endian bytes
            auto p = make(Obj::kOther);
            p->s = b_.substr(pos_, n);
            pos_ += n;
            stack_.push_back(p);
            break;
          }
          uint64_t v = le(n);
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);
          push_int(static_cast<int64_t>(v));
          break;
        }
        case 'G': {                                     // BINFLOAT (big-endian)
          uint64_t v = 0;
          for (int k = 0; k < 8; ++k) v = (v << 8) | u8();
          auto p = make(Obj::kFloat);
          std::memcpy(&p->f, &v, 8);
          stack_.push_back(p);
          break;
        }
        case 'U': push_str(u8()); break;                // SHORT_BINSTRING
        case 'T': case 'X': push_str(le(4)); break;     // BINSTRING / BINUNICODE
        case 0x8c: push_str(u8()); break;               // SHORT_BINUNICODE
        case 'c': {                                     // GLOBAL "module\nname\n"
          auto p = make(Obj::kGlobal);
          const std::string module = line();  // two statements: operand order of + is unspecified
          p->s = module + " " + line();
          stack_.push_back(p);
          break;
        }
        case 'q': memo_[u8()] = top(); break;           // BINPUT
        case 'r': memo_[le(4)] = top(); break;          // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;  // MEMOIZE
        case 'h': stack_.push_back(memo_at(u8())); break;
        case 'j': stack_.push_back(memo_at(le(4))); break;
        case ']': stack_.push_back(make(Obj::kList)); break;
        case '}': stack_.push_back(make(Obj::kDict)); break;
        case ')': stack_.push_back(make(Obj::kTuple)); break;
        case 'a': {                                     // APPEND
          auto v = pop();
          top()->items.push_back(v);
          break;
        }
        case 'e': {                                     // APPENDS
          auto items = pop_mark();
          auto& l = top()->items;
          l.insert(l.end(), items.begin(), items.end());
          break;
        }
        case 's': {                                     // SETITEM
          auto v = pop();
          auto k = pop();
          top()->dict.push_back({k, v});
          break;
        }
        case 'u': {                                     // SETITEMS
          auto items = pop_mark();
          if (items.size() % 2) fail("odd SETITEMS");
          for (size_t k = 0; k < items.size(); k += 2) top()->dict.push_back({items[k], items[k + 1]});
          break;
        }
        case 't': {
          auto t = make(Obj::kTuple);
          t->items = pop_mark();
          stack_.push_back(t);
          break;
        }
        case 0x85: case 0x86: case 0x87: {              // TUPLE1..3
          auto t = make(Obj::kTuple);
          t->items.resize(op - 0x84);
          for (size_t k = t->items.size(); k-- > 0;) t->items[k] = pop();
          stack_.push_back(t);
          break;
        }
        case 'Q': {                                     // BINPERSID
          auto pid = pop();
          if (pid->kind != Obj::kTuple || pid->items.size() < 5 || pid->items[0]->s != "storage") {
            fail("unexpected persistent id");
          }
          auto st = make(Obj::kStorage);
          st->storage_type = pid->items[1]->s;
          st->s = pid->items[2]->s;
          st->numel = pid->items[4]->i;
          stack_.push_back(st);
          break;
        }
        case 'R': {                                     // REDUCE
          auto args = pop();
          auto fn = pop();
          stack_.push_back(reduce(fn, args));
          break;
        }
        case 0x81: {                                    // NEWOBJ
          auto args = pop();
          auto cls = pop();
          stack_.push_back(reduce(cls, args));
          break;
        }
        case 'b': pop(); break;                         // BUILD: state (e.g. _metadata) not needed
        default: {
          char buf[64];
          std::snprintf(buf, sizeof buf, "unsupported pickle opcode 0x%02x at byte %zu", op, pos_ - 1);
          fail(buf);
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw FormatError(src_ + ": " + what); }
  uint8_t u8() {
    if (pos_ >= b_.size()) fail("truncated pickle");
    return static_cast<uint8_t>(b_[pos_++]);
  }
  uint64_t le(int n) {
    uint64_t v = 0;
    for (int k = 0; k < n; ++k) v |= static_cast<uint64_t>(u8()) << (8 * k);
    return v;
  }
  std::string line() {
    const size_t e = b_.find('\n', pos_);
    if (e == std::string::npos) fail("truncated GLOBAL");
    std::string s = b_.substr(pos_, e - pos_);
    pos_ = e + 1;
    return s;
  }
  void push_int(int64_t v) {
    auto p = make(Obj::kInt);
    p->i = v;
    stack_.push_back(p);
  }
  void push_str(uint64_t n) {
    if (pos_ + n > b_.size()) fail("truncated string");
    auto p = make(Obj::kStr);
    p->s = b_.substr(pos_, n);
    pos_ += n;
    stack_.push_back(p);
  }
  P top() {
    if (stack_.empty()) fail("pickle stack underflow");
    return stack_.back();
  }
  P pop() {
    P p = top();
    stack_.pop_back();
    return p;
  }
  std::vector<P> pop_mark() {
    std::vector<P> out;
    while (!stack_.empty() && stack_.back()->kind != Obj::kMark) out.insert(out.begin(), pop());
    if (stack_.empty()) fail("MARK not found");
    stack_.pop_back();
    return out;
  }
  P memo_at(uint64_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) fail("memo key " + std::to_string(k) + " missing");
    return it->second;
  }
  P reduce(const P& fn, const P& args) {
    if (fn->kind != Obj::kGlobal) fail("REDUCE on a non-global");
    if (fn->s == "collections OrderedDict") {
      auto d = make(Obj::kDict);
      if (!args->items.empty()) {
        for (const auto& kv : args->items[0]->items) {
          if (kv->items.size() != 2) fail("OrderedDict item is not a pair");
          d->dict.push_back({kv->items[0], kv->items[1]});
        }
      }
      return d;
    }
    if (fn->s == "torch._utils _rebuild_tensor_v2") {
      const auto& a = args->items;
      if (a.size() < 4 || a[0]->kind != Obj::kStorage) fail("bad _rebuild_tensor_v2 arguments");
      auto t = make(Obj::kTensor);
      t->storage = a[0];
      t->offset = a[1]->i;
      for (const auto& v : a[2]->items) t->size.push_back(v->i);
      for (const auto& v : a[3]->items) t->stride.push_back(v->i);
      return t;
    }
    auto o = make(Obj::kOther);
    o->s = fn->s;
    return o;
  }

  const std::string& b_;
  size_t pos_;
  std::string src_;
  std::vector<P> stack_;
  std::map<uint64_t, P> memo_;
};

torch::Dtype dtype_of(const std::string& storage_type, const std::string& src, size_t& elem) {
  static const std::map<std::string, std::pair<torch::Dtype, size_t>> kTypes = {
      {"torch FloatStorage", {torch::kFloat32, 4}}, {"torch DoubleStorage", {torch::kFloat64, 8}},
      {"torch HalfStorage", {torch::kFloat16, 2}},  {"torch LongStorage", {torch::kInt64, 8}},
      {"torch IntStorage", {torch::kInt32, 4}},     {"torch ByteStorage", {torch::kUInt8, 1}}};
  auto it = kTypes.find(storage_type);
  if (it == kTypes.end()) throw FormatError(src + ": unsupported storage type " + storage_type);
  elem = it->second.second;
  return it->second.first;
}

}  // namespace

std::map<std::string, torch::Tensor> load_legacy_torch_state_dict(const std::string& path) {
  const std::string b = read_file(path);
  if (b.size() >= 4 && b.compare(0, 4, "PK\x03\x04") == 0) {
    throw FormatError(path + ": this is the zip format of torch.save; load it with torch::pickle_load instead");
  }
  Unpickler u(b, 0, path);
  const P magic = u.load();
  // 0x1950a86a20f9469cfc6c, torch's legacy magic number, as little-endian bytes.
  if (magic->kind != Obj::kOther || magic->s != std::string("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10)) {
    throw FormatError(path + ": not a legacy torch.save file (magic number missing)");
  }
  Unpickler proto(b, u.pos(), path);
  proto.load();
  Unpickler sys(b, proto.pos(), path);
  sys.load();
  Unpickler main(b, sys.pos(), path);
  const P root = main.load();
  Unpickler keys_u(b, main.pos(), path);
  const P keys = keys_u.load();
  if (root->kind != Obj::kDict) throw FormatError(path + ": the saved object is not a dict of tensors");
  if (keys->kind != Obj::kList) throw FormatError(path + ": storage key list missing");
  // Storages follow in key order: int64 count, then the raw elements.
  std::map<std::string, torch::Tensor> storages;
  std::map<std::string, std::string> types;
  for (const auto& [k, v] : root->dict) {
    if (v->kind == Obj::kTensor) types[v->storage->s] = v->storage->storage_type;
  }
  size_t pos = keys_u.pos();
  for (const auto& k : keys->items) {
    if (pos + 8 > b.size()) throw FormatError(path + ": truncated storage data");
    int64_t n = 0;
    std::memcpy(&n, b.data() + pos, 8);
    pos += 8;
    auto it = types.find(k->s);
    const std::string type = it == types.end() ? "torch FloatStorage" : it->second;
    size_t elem = 0;
    const auto dtype = dtype_of(type, path, elem);
    if (n < 0 || pos + static_cast<size_t>(n) * elem > b.size()) throw FormatError(path + ": truncated storage " + k->s);
    auto t = torch::empty({n}, dtype);
    std::memcpy(t.data_ptr(), b.data() + pos, static_cast<size_t>(n) * elem);
    pos += static_cast<size_t>(n) * elem;
    storages[k->s] = t;
  }
  if (pos != b.size()) throw FormatError(path + ": " + std::to_string(b.size() - pos) + " unexpected trailing bytes");
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, v] : root->dict) {
    if (k->kind != Obj::kStr) continue;
    if (v->kind != Obj::kTensor) continue;
    auto it = storages.find(v->storage->s);
    if (it == storages.end()) throw FormatError(path + ": tensor " + k->s + " refers to a missing storage");
    out[k->s] = it->second.as_strided(v->size, v->stride, v->offset).contiguous();
  }
  return out;
}

}  // namespace face2scene::metrics::detail
