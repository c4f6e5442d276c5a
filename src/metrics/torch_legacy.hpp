// Private: reader for PyTorch's legacy (pre-1.6, non-zip) torch.save files holding a state dict,
// such as the LPIPS v0.1 heads and DISTS alpha/beta. LibTorch only reads the zip format.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

namespace face2scene::metrics::detail {

// Layout: pickle(magic) pickle(protocol) pickle(sys_info) pickle(object) pickle(storage keys),
// then per key: int64 element count + raw little-endian data. The object must be a dict /
// OrderedDict of name -> tensor (torch._utils._rebuild_tensor_v2). Tensors come back on the CPU,
// contiguous, in their stored dtype. Throws FormatError naming `path` and the problem.
std::map<std::string, torch::Tensor> load_legacy_torch_state_dict(const std::string& path);

}  // namespace face2scene::metrics::detail
