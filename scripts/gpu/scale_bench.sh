#!/usr/bin/env bash
# Scaling tables for docs/RESULTS.md on a multi-GPU machine (issue #23): training samples/s per GPU
# with 1, 2 (… all) GPUs, and restoration images/s with --devices 0 vs 0,1 (… all). Writes
# $OUT/scale_results.md (the tables, the commands, nvidia-smi's GPU names) and the logs.
#   PART=train|restore|all (default all)  GPUS="1 2" (default: 1, 2 and the machine's count)
#   STEPS (default 60; rate = median of the last 3 windows of 10 steps, so warm-up is left out)
#   BATCH (per GPU, default 16)  IMAGES (default 24)
# Carry as for scripts/gpu/train.sh: .deps, .cache/train, .cache/gpu_weights (training);
# restoration needs only the repository (weights/, examples/) and .cache/gpu_weights for the base.
set -euo pipefail
: "${OUT:?OUT must name the output folder}"
cd "$(dirname "$0")/../.."
PART=${PART:-all}
STEPS=${STEPS:-60}
BATCH=${BATCH:-16}
IMAGES=${IMAGES:-24}
ngpu=$(nvidia-smi -L | wc -l)
GPUS=${GPUS:-$(echo 1 2 "$ngpu" | tr ' ' '\n' | awk -v n="$ngpu" '$1<=n' | sort -nu | tr '\n' ' ')}
W=${W:-.cache/gpu_weights}
export F2S_WEIGHTS_DIR=${F2S_WEIGHTS_DIR:-$PWD/$W}  # the Real-ESRGAN base for `restore`
# Always (incremental): a build-gpu/ kept on a warm machine may predate this tree.
TARGETS=face2scene bash scripts/gpu-build.sh build-gpu | tail -3
F2S=$PWD/build-gpu/bin/face2scene
mkdir -p "$OUT"
res=$OUT/scale_results.md
{
  echo "# Scaling (issue #23): $(nvidia-smi --query-gpu=name --format=csv,noheader | sort | uniq -c | xargs), $(date -u +%F)"
  echo
} >"$res"
median3() { tail -n 3 | sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "nan")}'; }

if [ "$PART" = train ] || [ "$PART" = all ]; then
  echo "## Training: face2scene train restorer, batch $BATCH per GPU, $STEPS steps" >>"$res"
  echo >>"$res"
  echo "| GPUs | samples/s per GPU | total samples/s | per-GPU efficiency vs 1 GPU |" >>"$res"
  echo "|---|---|---|---|" >>"$res"
  base=""
  for n in $GPUS; do
    ck=$OUT/train_w$n
    rm -rf "$ck" && mkdir -p "$ck"
    cmd="$F2S -v train restorer --device cuda --data .cache/train -o $ck --max-steps $STEPS --log-every 10 --batch $BATCH --base $W/realesr-general-x4v3.safetensors --lpips-weights $W --fadex weights/fadex.safetensors --checkpoint-minutes 0"
    echo "+ scripts/gpu/train_multi.sh $n $cmd" | tee -a "$OUT/commands.txt"
    LOGDIR=$ck timeout 540 bash scripts/gpu/train_multi.sh "$n" $cmd >"$ck/rank0.log" 2>&1 || { tail -20 "$ck/rank0.log"; exit 1; }
    # restorer_loss.csv: step,seconds,samples_per_s,… (rank 0's window rate, per GPU)
    rate=$(tail -n +2 "$ck/restorer_loss.csv" | cut -d, -f3 | median3)
    [ -z "$base" ] && base=$rate
    awk -v n="$n" -v r="$rate" -v b="$base" 'BEGIN {printf "| %d | %.1f | %.1f | %.0f %% |\n", n, r, r*n, 100*r/b}' >>"$res"
  done
  echo >>"$res"
fi

if [ "$PART" = restore ] || [ "$PART" = all ]; then
  in=$OUT/restore_in
  rm -rf "$in" && mkdir -p "$in"
  for i in $(seq -w 1 "$IMAGES"); do cp examples/solvay_group.jpg "$in/solvay_$i.jpg"; done
  mkdir -p "$OUT/restore_small"
  cp examples/solvay_group.jpg "$OUT/restore_small/a.jpg"; cp examples/solvay_group.jpg "$OUT/restore_small/b.jpg"
  echo "## Restoration: face2scene restore (examples/solvay_group.jpg ×$IMAGES, ×4, blind-reference mode)" >>"$res"
  echo >>"$res"
  echo "images/s = ($IMAGES − 2) / (wall time of $IMAGES images − wall time of 2): model loading left out." >>"$res"
  echo >>"$res"
  echo "| --devices | images/s | speed-up vs 1 GPU |" >>"$res"
  echo "|---|---|---|" >>"$res"
  base=""
  for n in $GPUS; do
    devs=$(seq -s, 0 $((n - 1)))
    run() {  # wall seconds of one restore run
      local s e
      s=$(date +%s.%N)
      "$F2S" -q restore "$1" -o "$2" --devices "$devs" >"$2.log" 2>&1 || { tail -5 "$2.log" >&2; exit 1; }
      e=$(date +%s.%N)
      awk -v s="$s" -v e="$e" 'BEGIN {print e - s}'
    }
    echo "+ $F2S -q restore $in -o OUT --devices $devs" | tee -a "$OUT/commands.txt"
    small=$(run "$OUT/restore_small" "$OUT/restore_small_out_$n")
    big=$(run "$in" "$OUT/restore_out_$n")
    rate=$(awk -v a="$small" -v b="$big" -v k="$IMAGES" 'BEGIN {printf "%.3f", (k - 2) / (b - a)}')
    [ -z "$base" ] && base=$rate
    awk -v d="$devs" -v r="$rate" -v b="$base" 'BEGIN {printf "| %s | %.2f | %.2fx |\n", d, r, r/b}' >>"$res"
    rm -rf "$OUT/restore_out_$n" "$OUT/restore_small_out_$n"
  done
  rm -rf "$in" "$OUT/restore_small"
fi
cat "$res"
