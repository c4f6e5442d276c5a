#!/usr/bin/env bash
# Data-parallel training on one machine: N local processes, one per GPU, with the environment
# torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so the same command also
# runs under torchrun, Slurm's srun or a Kubernetes job (docs/scale-out.md).
#   scripts/gpu/train_multi.sh N face2scene train restorer --device cuda --data .cache/train -o out/train ...
# --distributed is appended. Rank 0 prints to stdout; rank r logs to $LOGDIR/rank<r>.log (default
# the -o folder's parent, else .). If any rank fails, the others are stopped and the exit code is
# the first failure's. Env: MASTER_PORT (default 29500 + a number from this shell's pid), LOGDIR.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,9p' "$0"; exit 2; }
N=$1
shift
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "train_multi.sh: N must be a positive integer, got '$N'" >&2; exit 2; }
export WORLD_SIZE=$N MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} MASTER_PORT=${MASTER_PORT:-$((29500 + $$ % 1000))}
LOGDIR=${LOGDIR:-.}
mkdir -p "$LOGDIR"
pids=()
for ((r = 0; r < N; r++)); do
  if [ "$r" = 0 ]; then
    RANK=$r LOCAL_RANK=$r "$@" --distributed &
  else
    RANK=$r LOCAL_RANK=$r "$@" --distributed >"$LOGDIR/rank$r.log" 2>&1 &
  fi
  pids+=($!)
done
stop_others() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap 'stop_others; exit 130' INT TERM
rc=0
# wait -n: whichever rank exits first; a failure stops the rest (a dead rank would leave them
# waiting in a collective until the timeout). The ranks are this shell's only background jobs.
set +e
for ((k = 0; k < N; k++)); do
  wait -n -p done_pid
  st=$?
  if [ "$st" != 0 ] && [ "$rc" = 0 ]; then
    rc=$st
    echo "train_multi.sh: rank pid $done_pid failed (exit $st); stopping the others (logs: $LOGDIR/rank*.log)" >&2
    stop_others
  fi
done
exit "$rc"
