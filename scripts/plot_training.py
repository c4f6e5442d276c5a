#!/usr/bin/python3
"""Loss curves of the oracle-core training runs (CSV from `face2scene train`) as one PNG.

The trainers append one row every --log-every steps; each resumed call restarts its step count,
so calls are found where the step number drops. Usage:
  /usr/bin/python3 scripts/plot_training.py FADEX_CSV RESTORER_CSV OUT.png [BATCHES]
BATCHES: comma-separated restorer batch size of each call (default 16,24,32,32), for the x axis.
"""
import csv
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt


def load(path):
    rows = list(csv.DictReader(open(path)))
    calls, prev = [0], -1
    for r in rows:
        s = int(r["step"])
        calls.append(calls[-1] + (1 if s < prev else 0))
        prev = s
    return rows, calls[1:]


def smooth(v, k=8):
    out = []
    for i in range(len(v)):
        w = v[max(0, i - k + 1): i + 1]
        out.append(sum(w) / len(w))
    return out


fadex, fcalls = load(sys.argv[1])
rest, rcalls = load(sys.argv[2])
batches = [int(b) for b in (sys.argv[4] if len(sys.argv) > 4 else "16,24,32,32").split(",")]
fig, ax = plt.subplots(1, 3, figsize=(15, 4))
x = list(range(len(fadex)))
ax[0].plot(x, smooth([float(r["infonce"]) for r in fadex]), label="InfoNCE")
ax[0].plot(x, smooth([float(r["param_mse"]) for r in fadex]), label="parameter MSE (normalised)")
ax[0].plot(x, smooth([float(r["top1"]) for r in fadex]), label="top-1 pair retrieval (of 32)")
ax[0].set_title("FaDeX (log rows of 25 steps, 2 calls)")
ax[0].set_xlabel("row")
ax[0].legend()
samples, total, prev_call, steps_prev = [], 0, 0, 0
for r, c in zip(rest, rcalls):
    step = int(r["step"])
    if c != prev_call:
        steps_prev, prev_call = 0, c
    total += (step - steps_prev) * batches[min(c, len(batches) - 1)]
    steps_prev = step
    samples.append(total / 1000)
for k, name in ((1, "l1"), (2, "lpips")):
    ax[k].plot(samples, smooth([float(r[name]) for r in rest]), label="conditioned (face code)")
    ax[k].plot(samples, smooth([float(r["blind_" + name]) for r in rest]), label="blind twin")
    ax[k].set_title(f"scene restorer, training {name.upper()} (moving average of 8 rows)")
    ax[k].set_xlabel("training samples (thousands)")
    ax[k].legend()
fig.tight_layout()
fig.savefig(sys.argv[3], dpi=80)
