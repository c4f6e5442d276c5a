// Toy-sized scene restorer, MapNet and backbone weights shared by the restorer and GAN tests
// (test_train.cpp, test_gan.cpp), so both train and check the same small networks.
#pragma once

#include <torch/torch.h>

#include "face2scene/oracle.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/scene_restorer.hpp"

namespace f2s_test {
inline face2scene::SceneRestorerOptions tiny_options() {
  face2scene::SceneRestorerOptions o;
  o.num_feat = 16;
  o.num_conv = 4;
  o.adapter_every = 2;
  o.token_dim = 32;
  o.heads = 2;
  o.lora_rank = 2;
  return o;
}
inline face2scene::MapNetOptions tiny_mapnet_options() {
  face2scene::MapNetOptions mo;
  mo.code_dim = 16;
  mo.embed_dim = 16;
  mo.token_dim = 32;
  mo.heads = 2;
  return mo;
}
inline face2scene::RRDBNetOptions tiny_rrdb(const face2scene::SceneRestorerOptions& o) {
  face2scene::RRDBNetOptions bo;
  bo.num_feat = o.num_feat;
  bo.num_block = o.num_block;
  bo.num_grow_ch = o.num_grow_ch;
  return bo;
}
// Random weights of the backbone `o` names, the same on every call.
// x4plus at toy size: 2 RRDB blocks, width 16, growth 8; an adapter after each block + one after the body.
inline face2scene::SceneRestorerOptions tiny_x4plus_options() {
  auto o = tiny_options();
  o.backbone = face2scene::RealEsrganModel::kX4Plus;
  o.num_block = 2;
  o.num_grow_ch = 8;
  o.adapter_every = 1;
  return o;
}

inline face2scene::TensorMap random_base(const face2scene::SceneRestorerOptions& o) {
  using namespace face2scene;
  torch::manual_seed(5);
  if (o.backbone == RealEsrganModel::kX4Plus) return state_dict(*RRDBNet(tiny_rrdb(o)));
  SRVGGNetCompactOptions bo;
  bo.num_feat = o.num_feat;
  bo.num_conv = o.num_conv;
  return state_dict(*SRVGGNetCompact(bo));
}
}  // namespace f2s_test
