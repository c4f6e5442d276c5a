// `face2scene convert-weights`: re-store a safetensors file's floating tensors in another dtype
// (fp32 training checkpoints -> fp16 shipped weights or bf16 copies small enough to travel back
// from the GPU machine). Metadata is kept; integer tensors and the dtype of buffers that must stay
// float32 (names given with --keep) are untouched.
#include "cli_common.hpp"
#include "face2scene/core.hpp"
#include "face2scene/safetensors.hpp"

namespace face2scene::cli {
namespace {
torch::Dtype parse_store_dtype(const std::string& s) {
  if (s == "fp16") return torch::kHalf;
  if (s == "bf16") return torch::kBFloat16;
  if (s == "fp32") return torch::kFloat32;
  throw ArgumentError("--dtype must be fp16, bf16 or fp32, not '" + s + "'");
}

Command setup_convert_weights(CLI::App& app, GlobalOptions&) {
  auto* sub = app.add_subcommand("convert-weights", "Store a safetensors file's floating tensors as fp16, bf16 or fp32");
  struct Args {
    std::string in, out, dtype = "fp16";
    std::vector<std::string> keep;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("IN", a->in, "safetensors file")->required()->check(CLI::ExistingFile);
  sub->add_option("OUT", a->out, "output file (written atomically; may equal IN)")->required();
  sub->add_option("--dtype", a->dtype, "fp16 (default), bf16 or fp32");
  sub->add_option("--keep", a->keep, "Tensor names kept in their stored dtype (e.g. normaliser buffers)");
  sub->footer("Example: face2scene convert-weights out/ref_fr/ref_fr.safetensors weights/ref_fr.safetensors --dtype fp16");
  return {sub, [a]() {
            const torch::Dtype dtype = parse_store_dtype(a->dtype);
            SafeTensors st = load_safetensors(a->in);
            for (auto& [name, t] : st.tensors) {
              const bool keep = std::find(a->keep.begin(), a->keep.end(), name) != a->keep.end();
              if (t.is_floating_point() && !keep) t = t.to(dtype);
            }
            for (const auto& k : a->keep)
              if (!st.tensors.count(k)) throw ArgumentError(a->in + ": --keep names no tensor '" + k + "'");
            save_safetensors(a->out, st.tensors, st.metadata);
            log_info("wrote " + a->out + " (" + a->dtype + ")");
          }};
}
}  // namespace
F2S_REGISTER_COMMAND(convert_weights, setup_convert_weights);
}  // namespace face2scene::cli
