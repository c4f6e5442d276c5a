// ParamEncoder: the degradation engine's (normalised) parameter vector -> a FaDeX-shaped code map.
#include "face2scene/oracle.hpp"

namespace face2scene {
namespace nn = torch::nn;

ParamEncoderImpl::ParamEncoderImpl(const ParamEncoderOptions& o) : options(o) {
  mlp = register_module("mlp", nn::Sequential(nn::Linear(o.param_dim, o.hidden), nn::GELU(), nn::Linear(o.hidden, o.hidden),
                                              nn::GELU(), nn::Linear(o.hidden, o.code_dim)));
}

torch::Tensor ParamEncoderImpl::forward(const torch::Tensor& p) {
  // Broadcast over the grid: the parameters describe the whole image, as FaDeX's code should.
  return mlp->forward(p).unsqueeze(-1).unsqueeze(-1).expand({-1, -1, options.code_grid, options.code_grid}).contiguous();
}

}  // namespace face2scene
