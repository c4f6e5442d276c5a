// `face2scene train fadex|restorer`: the oracle core's trainers (GPU machine; CPU works, slowly).
#include <filesystem>

#include "cli_common.hpp"
#include "face2scene/core.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/train.hpp"
#include "face2scene/train_ref_fr.hpp"

namespace face2scene::cli {
namespace {
namespace fs = std::filesystem;

struct TrainArgs {
  std::string data = ".cache/train", out = "out/train", heldout = "bench/heldout.sha256";
  std::string presets = "mild,moderate,severe,realesrgan", device = "auto";
  double minutes = 8, lr = 2e-4, x1 = 0.3;
  int64_t steps = 0;
  uint64_t seed = 1;
  int log_every = 25;
  // fadex
  int degradations = 32;
  std::string teacher, size_faces;
  std::vector<int64_t> lq_sides{12, 128};
  std::string task_restorer, task_blind;
  double task_weight = 0;
  int64_t task_batch = 16;
  // restorer
  std::string fadex, base, lpips = "../shared/data/weights";
  int batch = 16;
  int64_t crop = 256;
  double lpips_weight = 0.2;
  bool no_blind = false;
  bool param_oracle = false;
  std::string backbone = "general-x4v3";
  bool amp = false;
  // restorer, adversarial (issue 21)
  double l1_weight = 1.0, gan_weight = 0, disc_lr = 1e-4, people_fraction = 0, dof_prob = 0, moments_mb = 48;
  int64_t gan_warmup = 0, disc_feat = 64;
  bool disc_projection = false;
  // ref-fr
  std::string faces = ".cache/ref_fr", split = "bench/ref_fr_split.tsv", identity, data_root = "../shared/data";
  double ref_lpips_weight = 1.0, identity_weight = 0.3, adv_weight = 0.02, no_ref = 0.3, ckpt_minutes = 2;
  int64_t adv_warmup = 1500, face_size = 128;
  int max_refs = 3;
  std::string init;
  int64_t aligned_levels = 2;
  std::vector<float> scales{2, 3, 4, 6, 8, 12, 16};
  bool write_split = false;
  // distributed
  bool distributed = false;
  std::string dist_backend = "auto", dist_store;
};

void add_common(CLI::App* sub, TrainArgs& a) {
  sub->add_option("--data", a.data, "Packed training data (faces/ and scenes/, from scripts/pack_training_data.sh)");
  sub->add_option("-o,--out", a.out, "Folder for checkpoints, loss CSV; training resumes from what is there");
  sub->add_option("--heldout", a.heldout, "sha256sum list of benchmark images that must never be trained on");
  sub->add_option("--device", a.device, "auto, cpu, cuda or cuda:N");
  sub->add_option("--presets", a.presets, "Degradation presets mixed per batch (comma-separated)");
  sub->add_option("--max-minutes", a.minutes, "Wall-clock budget; stops by itself and writes the checkpoint");
  sub->add_option("--max-steps", a.steps, "Stop at this total step count (0 = budget only)");
  sub->add_option("--lr", a.lr, "Learning rate (AdamW)");
  sub->add_option("--x1-fraction", a.x1, "Share of batches degraded at ×1 (same size) instead of ×4");
  sub->add_option("--seed", a.seed, "Seed of every random stream of the run");
  sub->add_option("--log-every", a.log_every, "Steps per CSV row / log line");
  sub->add_flag("--distributed", a.distributed,
                "Data-parallel: this process is one rank, as torchrun/srun/a Kubernetes job sets RANK, WORLD_SIZE,\n"
                "LOCAL_RANK, MASTER_ADDR, MASTER_PORT (--batch is per rank; --device cuda means cuda:LOCAL_RANK;\n"
                "rank 0 writes checkpoints and logs). docs/scale-out.md, scripts/gpu/train_multi.sh");
  sub->add_option("--dist-backend", a.dist_backend, "auto (nccl on CUDA, gloo on CPU), nccl or gloo")
      ->check(CLI::IsMember({"auto", "nccl", "gloo"}));
  sub->add_option("--dist-store", a.dist_store,
                  "Rendezvous through this file (a FileStore on a shared filesystem) instead of MASTER_ADDR:PORT");
}

// --distributed: joins the process group; the rank's device is cuda:LOCAL_RANK for a bare "cuda".
void join_process_group(const TrainArgs& a, TrainCommon& c) {
  if (!a.distributed) return;
  dist::DistOptions d;
  d.env = dist::DistEnv::from_env();
  if (c.device.is_cuda() && !c.device.has_index())
    c.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(d.env.local_rank));
  d.device = c.device;
  d.backend = a.dist_backend;
  d.file_store = a.dist_store;
  c.dist = dist::init_process_group(d);
  // Rank 0 speaks for the run; the others only warn.
  if (c.dist->rank() != 0 && log_level() < LogLevel::kWarn) set_log_level(LogLevel::kWarn);
}

TrainCommon make_common(const TrainArgs& a) {
  TrainCommon c;
  c.data.faces_dir = a.data + "/faces";
  c.data.scenes_dir = a.data + "/scenes";
  c.data.heldout_list = a.heldout;
  if (!a.heldout.empty() && !file_exists(a.heldout)) {
    throw IoError(a.heldout + ": held-out checksum list not found (run from the repository root or pass --heldout)");
  }
  c.out_dir = a.out;
  c.device = parse_device(a.device);
  c.max_minutes = a.minutes;
  c.max_steps = a.steps;
  c.seed = a.seed;
  c.log_every = a.log_every;
  c.lr = a.lr;
  c.x1_fraction = a.x1;
  c.checkpoint_minutes = a.ckpt_minutes;
  c.presets.clear();
  std::string rest = a.presets;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    c.presets.push_back(rest.substr(0, comma));
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }
  return c;
}

void print_report(const std::string& what, const TrainReport& r, const std::string& out, const TrainCommon& c) {
  if (!c.primary()) return;
  char buf[320], per[96] = "";
  if (r.world_size > 1)
    std::snprintf(per, sizeof per, " per rank x %d ranks = %.1f samples/s", r.world_size, r.samples_per_s * r.world_size);
  std::snprintf(buf, sizeof buf, "%s: %lld steps in %.0f s, %.1f samples/s%s, last loss %.4f; written to %s", what.c_str(),
                static_cast<long long>(r.steps), r.seconds, r.samples_per_s, per, r.last_loss, out.c_str());
  std::printf("%s\n", buf);
}

Command setup_train(CLI::App& app, GlobalOptions&) {
  auto* sub = app.add_subcommand("train", "Train the oracle core: FaDeX, then the conditioned scene restorer");
  sub->require_subcommand(1);
  auto a = std::make_shared<TrainArgs>();
  auto* fadex = sub->add_subcommand("fadex", "Degradation extractor: InfoNCE over shared degradations + parameter regression");
  add_common(fadex, *a);
  fadex->add_option("--degradations", a->degradations, "Degradations per batch (each on two faces)");
  fadex->add_option("--teacher", a->teacher,
                    "Face-size distillation: start from this fixed-size FaDeX and teach it to read faces of any\n"
                    "size in the degraded photo as the teacher reads 128² faces (keeps MapNet and the restorer valid)");
  fadex->add_option("--size-faces", a->size_faces, "With --teacher: clean aligned faces of any size (e.g. 256² or 512²)");
  fadex->add_option("--lq-sides", a->lq_sides, "With --teacher: smallest and largest face side in the degraded photo")
      ->expected(2)
      ->delimiter(',');
  fadex->add_option("--task-weight", a->task_weight,
                    "With --teacher: also restore the degraded faces with the frozen conditioned restorer from the\n"
                    "student's code and add w * (L1 + 0.2 LPIPS) to the loss (default 0: distillation only)");
  fadex->add_option("--task-batch", a->task_batch, "With --task-weight: faces of each batch restored (default 16)");
  fadex->add_option("--restorer", a->task_restorer, "With --task-weight: the conditioned scene restorer (default weights/scene_restorer.safetensors)");
  fadex->add_option("--restorer-blind", a->task_blind,
                    "With --task-weight: its blind twin, run on the same faces and logged as task_gain (optional)");
  fadex->add_option("--base", a->base, "With --task-weight: the restorer's Real-ESRGAN base (default: the weights cache)");
  fadex->add_option("--lpips-weights", a->lpips, "With --task-weight: LPIPS weights folder (as for `metrics`)");
  auto* rest = sub->add_subcommand("restorer", "Conditioned restorer and its blind twin on the same batches");
  add_common(rest, *a);
  rest->add_option("--fadex", a->fadex, "Trained FaDeX (default: <out>/fadex.safetensors)");
  rest->add_option("--backbone", a->backbone,
                   "Frozen Real-ESRGAN prior: general-x4v3 (fast, SRVGGNetCompact) or x4plus (quality, RRDBNet)")
      ->check(CLI::Validator(
          [](std::string& name) -> std::string {
            try {  // checked while parsing, before any file is looked for
              parse_realesrgan_model(name);
              return "";
            } catch (const std::exception& e) {
              return e.what();
            }
          },
          "general-x4v3|x4plus"));
  rest->add_option("--base", a->base, "The backbone's Real-ESRGAN safetensors (default: the weights cache)");
  rest->add_flag("--amp", a->amp, "bf16 autocast for the forward passes (CUDA; LibTorch >= 2.4)");
  rest->add_option("--lpips-weights", a->lpips, "LPIPS weights folder (as for `metrics`)");
  rest->add_option("--batch", a->batch, "Samples per batch");
  rest->add_option("--crop", a->crop, "HR scene crop side");
  rest->add_option("--lpips-weight,--perceptual-weight", a->lpips_weight, "Loss = L1 + w * LPIPS (+ GAN)");
  rest->add_option("--l1-weight", a->l1_weight, "Weight of the L1 term (default 1)");
  rest->add_option("--gan-weight", a->gan_weight,
                   "Adversarial fine-tuning: weight of the GAN term (Real-ESRGAN: 0.1 with --perceptual-weight 1);\n"
                   "every student gets its own U-Net discriminator with spectral norm (0 = none)");
  rest->add_option("--gan-warmup", a->gan_warmup, "Step from which the generators get the GAN term (critics train from the start)");
  rest->add_option("--disc-lr", a->disc_lr, "Discriminators' learning rate");
  rest->add_option("--disc-feat", a->disc_feat, "Discriminator width (Real-ESRGAN: 64, 4.4 M parameters; 32: a quarter)");
  rest->add_flag("--disc-projection", a->disc_projection,
                 "Projection discriminators conditioned on FaDeX's global degradation code (every student's alike)");
  rest->add_option("--init", a->init,
                   "Start from the restorer files of this folder when -o has none (restorer*.safetensors or the\n"
                   "shipped scene_restorer*.safetensors, e.g. weights/): a fine-tune of trained weights");
  rest->add_option("--people-fraction", a->people_fraction,
                   "Share of scene crops cut, at random scales, from <data>/people (scripts/pack_gan_data.sh)");
  rest->add_option("--dof-prob", a->dof_prob, "Share of clean crops given a synthetic shallow depth of field (bokeh)");
  rest->add_option("--fp32-moments-max-mb", a->moments_mb,
                   "Checkpoint AdamW moments in float32 (exact resume) while they fit this size, else bf16");
  rest->add_flag("--no-blind", a->no_blind, "Skip the blind twin");
  rest->add_flag("--param-oracle", a->param_oracle,
                 "Also train the ablation's upper bound: a restorer conditioned on the true degradation parameters\n"
                 "(restorer_params + param_encoder .safetensors; starts from restorer.safetensors when present)");
  for (auto* t : {fadex, rest}) {
    t->add_option("--checkpoint-minutes", a->ckpt_minutes,
                  "Write the resume checkpoint (<name>_state.safetensors: weights fp32, AdamW moments fp32\n"
                  "when they fit 48 MB, step) atomically this often (default 2; 0 = only at the end)");
  }
  auto* rfr = sub->add_subcommand("ref-fr", "Ref-FR face restorer and its blind twin on the same batches");
  add_common(rfr, *a);
  rfr->add_option("--faces", a->faces, "Packed aligned faces, one folder per identity (train pack-ref-fr)");
  rfr->add_option("--split", a->split, "Identity split file; test identities are refused");
  rfr->add_option("--identity-weights", a->identity,
                  "faceres weights for the identity loss (default: " + default_identity_weights() +
                      ", from scripts/install_models.sh), or none");
  rfr->add_option("--lpips-weights", a->lpips, "LPIPS weights folder (as for `metrics`)");
  rfr->add_option("--batch", a->batch, "Faces per batch");
  rfr->add_option("--size", a->face_size, "Aligned face side (multiple of 32)");
  rfr->add_option("--lpips-weight", a->ref_lpips_weight, "LPIPS weight of the loss (L1 has weight 1)");
  rfr->add_option("--identity-weight", a->identity_weight, "Identity (1 - cos) weight");
  rfr->add_option("--adv-weight", a->adv_weight, "GAN weight (0 = no critic)");
  rfr->add_option("--adv-warmup", a->adv_warmup, "Steps before the GAN loss starts");
  rfr->add_option("--no-ref-fraction", a->no_ref, "Share of batches without references");
  rfr->add_option("--max-refs", a->max_refs, "A batch with references draws 1..N of them");
  rfr->add_option("--scales", a->scales, "Face downscale factors drawn per batch (comma-separated, e.g. 2,3,4,6,8,12,16)")
      ->delimiter(',');
  rfr->add_option("--checkpoint-minutes", a->ckpt_minutes, "Write checkpoints (atomically) this often");
  rfr->add_flag("--no-blind", a->no_blind, "Skip the blind twin");
  rfr->add_option("--init", a->init, "Warm start from the Ref-FR files of this folder when -o has none (new modules\n"
                  "keep their initialisation; e.g. --init weights)");
  rfr->add_option("--aligned-levels", a->aligned_levels, "Aligned reference paths: 2 (at size/2 and size/4) or 0");
  auto* pack = sub->add_subcommand("pack-ref-fr", "Pack the Ref-FR training faces (train identities only) for the GPU machine");
  pack->add_option("--data-root", a->data_root, "The shared data folder");
  pack->add_option("-o,--out", a->faces, "Output folder: <identity>/<file>.jpg at --size");
  pack->add_option("--size", a->face_size, "Face side");
  pack->add_option("--split", a->split, "Split file to read (or write with --write-split)");
  pack->add_flag("--write-split", a->write_split, "Make the split from the data's layout and write it to --split first");
  sub->footer(
      "Data: scripts/pack_training_data.sh packs faces and scenes (benchmark images excluded by sha256).\n"
      "GPU runs: scripts/gpu/train.sh. Losses go to <out>/*_loss.csv; rerunning resumes.\n"
      "Examples:\n"
      "  face2scene train fadex --device cuda --max-minutes 3\n"
      "  face2scene train restorer --device cuda --max-minutes 6\n"
      "  face2scene train restorer --device cuda --backbone x4plus --amp --batch 32 -o out/train_x4plus");
  return {sub, [a, fadex, rest, rfr, pack]() {
            if (pack->parsed()) {
              if (a->write_split) write_face_split(a->split, make_face_split(a->data_root));
              const auto r = pack_ref_fr_data(a->data_root, read_face_split(a->split), a->faces, a->face_size);
              std::printf("packed %lld faces of %lld train identities into %s; content guard: %lld held-out images, "
                          "highest thumbnail NCC %.3f (refused at 0.95)\n",
                          static_cast<long long>(r.faces), static_cast<long long>(r.identities), a->faces.c_str(),
                          static_cast<long long>(r.heldout_files), r.max_ncc);
              return;
            }
            if (rfr->parsed()) a->heldout.clear();  // Ref-FR is guarded by its identity split instead
            TrainCommon c = make_common(*a);
            join_process_group(*a, c);
            if (rfr->parsed()) {
              RefFRTrainOptions o;
              o.common = c;
              o.net.size = a->face_size;
              o.faces_dir = a->faces;
              o.split_file = a->split;
              o.lpips_weights = a->lpips;
              o.identity_weights = a->identity.empty() ? default_identity_weights() : a->identity;
              if (o.identity_weights == "none") o.identity_weights.clear();
              if (!o.identity_weights.empty() && !file_exists(o.identity_weights))
                throw IoError(o.identity_weights + ": identity network not found (or --identity-weights none)");
              o.batch = a->batch;
              o.lpips_weight = a->ref_lpips_weight;
              o.identity_weight = a->identity_weight;
              o.adv_weight = a->adv_weight;
              o.adv_warmup = a->adv_warmup;
              o.no_ref_fraction = a->no_ref;
              o.max_train_refs = a->max_refs;
              o.scales = a->scales;
              o.checkpoint_minutes = a->ckpt_minutes;
              o.train_blind = !a->no_blind;
              o.init_dir = a->init;
              o.net.aligned_levels = a->aligned_levels;
              print_report("train ref-fr", train_ref_fr(o), c.out_dir, c);
              return;
            }
            if (fadex->parsed()) {
              FaDeXTrainOptions o;
              o.common = c;
              o.degradations = a->degradations;
              o.teacher = a->teacher;
              o.size_faces_dir = a->size_faces;
              o.lq_min = a->lq_sides.at(0);
              o.lq_max = a->lq_sides.at(1);
              o.task_weight = a->task_weight;
              o.task_batch = a->task_batch;
              if (o.task_weight > 0) {
                o.restorer_weights = a->task_restorer.empty() ? "weights/scene_restorer.safetensors" : a->task_restorer;
                o.blind_weights = a->task_blind;
                o.base_weights = a->base;
                o.lpips_weights = a->lpips;
                for (const auto& f : {o.restorer_weights, o.blind_weights}) {
                  if (!f.empty() && !file_exists(f)) throw IoError(f + ": scene restorer not found");
                }
              }
              if (!o.teacher.empty() && !file_exists(o.teacher)) throw IoError(o.teacher + ": teacher FaDeX not found");
              print_report("train fadex", train_fadex(o), c.out_dir, c);
            } else if (rest->parsed()) {
              RestorerTrainOptions o;
              o.common = c;
              o.fadex_weights = a->fadex.empty() ? c.out_dir + "/" + kFaDeXFile : a->fadex;
              o.net.backbone = parse_realesrgan_model(a->backbone);
              if (o.net.backbone == RealEsrganModel::kX4Plus) o.net.adapter_every = 3;  // 7 + 1 adapters
              o.base_weights = a->base.empty() ? realesrgan_weights_path(o.net.backbone) : a->base;
              for (const auto& f : {o.fadex_weights, o.base_weights}) {
                if (!file_exists(f)) throw IoError(f + ": not found (train fadex first / run scripts/install_models.sh)");
              }
              o.lpips_weights = a->lpips;
              o.batch = a->batch;
              o.crop = a->crop;
              o.lpips_weight = a->lpips_weight;
              o.train_blind = !a->no_blind;
              o.param_oracle = a->param_oracle;
              o.amp = a->amp;
              o.l1_weight = a->l1_weight;
              o.gan_weight = a->gan_weight;
              o.gan_warmup = a->gan_warmup;
              o.disc_lr = a->disc_lr;
              o.disc.num_feat = a->disc_feat;
              o.disc_projection = a->disc_projection;
              o.init_dir = a->init;
              o.people_fraction = a->people_fraction;
              o.dof_prob = a->dof_prob;
              o.common.fp32_moments_max_mb = a->moments_mb;
              if (fs::is_directory(a->data + "/people")) o.common.data.people_dir = a->data + "/people";
              if (o.people_fraction > 0 && o.common.data.people_dir.empty())
                throw IoError(a->data + "/people: not found (--people-fraction needs scripts/pack_gan_data.sh's pack)");
              print_report("train restorer", train_restorer(o), c.out_dir, c);
            }
          }};
}
}  // namespace
F2S_REGISTER_COMMAND(train, setup_train);
}  // namespace face2scene::cli
