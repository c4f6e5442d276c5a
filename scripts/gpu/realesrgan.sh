#!/usr/bin/env bash
# Real-ESRGAN on the GPU machine: face2scene (CUDA fp16/bf16) vs upscayl-bin (NVIDIA Vulkan), and
# agreement of both with an independent fp32 PyTorch implementation. Runs from the repo root in
# about 3 minutes; results in $OUT: realesrgan_gpu.md (summary) and agreement.csv, timings.csv.
# Needs (carry): build-gpu/bin/face2scene (built by the lead), .cache/esr_gpu (made here by
# scripts/gpu/prepare_realesrgan.sh: upscayl-bin, the ncnn models, 6 photos 512², raw copies),
# .gl (the Vulkan loader debs, see the device README).
set -uo pipefail
OUT="${OUT:-out/esr_gpu}"; mkdir -p "$OUT"
F2S="${F2S:-build-gpu/bin/face2scene}"
E=.cache/esr_gpu
T="$(mktemp -d)"
MD="$OUT/realesrgan_gpu.md"; CSV="$OUT/agreement.csv"; TIMES="$OUT/timings.csv"
for f in .gl/*.deb; do dpkg -x "$f" / ; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
UB="$E/upscayl-bin"; chmod +x "$UB"
ms() { date +%s%N | cut -c1-13; }
# timed LABEL CMD...: wall time of a whole process (start to files written), like docs/peers.md.
timed() { local l="$1"; shift; local s; s=$(ms); timeout 120 "$@" >"$T/$l.log" 2>&1; local rc=$?; local e; e=$(ms);
  echo "$l,$rc,$(( e - s ))" >> "$TIMES"; echo "$l rc=$rc $(( e - s )) ms"; }
echo "label,rc,ms" > "$TIMES"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
"$F2S" import-weights --from "$E/models" --out "$T/w" || { echo "import-weights failed" >&2; exit 1; }
export F2S_WEIGHTS_DIR="$T/w"
P1="$E/photos/01_kodim15.png"
mkdir -p "$T/f100"; i=0
while [ $i -lt 100 ]; do for p in "$E"/photos/*.png; do [ $i -lt 100 ] && ln -sf "$(realpath "$p")" "$T/f100/$(printf %03d $i).png"; i=$((i+1)); done; done
mkdir -p "$T/f20"; for k in $(seq -f %03g 0 19); do ln -sf "$(realpath "$E/photos/01_kodim15.png")" "$T/f20/$k.png"; done

for m in x4fast x4plus; do
  fm=$m; [ $m = x4fast ] && fm=general-x4v3
  # 1. one 512² photo → 2048², whole process (twice: the first pays driver/shader start-up)
  for r in 1 2; do
    timed "ub_single_${m}_$r" "$UB" -i "$P1" -o "$T/ub1_$m.png" -n realesrgan-$m -m "$E/models" -s 4 -g 0
    for dt in fp16 bf16; do
      timed "ours_single_${m}_${dt}_$r" "$F2S" -q upscale "$P1" -o "$T/o1_${m}_$dt.png" --model $fm --device cuda --dtype $dt --tile 0 --overwrite
    done
  done
  # 2. six photos: upscayl-bin, ours fp16 / bf16 / fp32 (CUDA), PyTorch fp32 reference
  mkdir -p "$T/ub_$m" "$T/ub20_$m"
  timed "ub_photos_$m" "$UB" -i "$E/photos" -o "$T/ub_$m" -n realesrgan-$m -m "$E/models" -s 4 -g 0 -f png
  for dt in fp16 bf16 fp32; do
    timed "ours_photos_${m}_$dt" "$F2S" -q upscale "$E/photos" -o "$T/ours_${m}_$dt" --model $fm --device cuda --dtype $dt --tile 0 --overwrite
  done
  wf="$T/w/realesrgan-x4plus.safetensors"; [ $m = x4fast ] && wf="$T/w/realesr-general-x4v3.safetensors"
  timed "pyref_$m" python3 scripts/gpu/realesrgan_ref.py $([ $m = x4fast ] && echo general-x4v3 || echo x4plus) "$wf" "$T/py_$m" "$E"/raw/*.rgb
  # 3. throughput: ours over 100 images (fp16), upscayl-bin over 20
  timed "ours_f100_${m}_fp16" "$F2S" -q upscale "$T/f100" -o "$T/o100_$m" --model $fm --device cuda --dtype fp16 --tile 0 --overwrite
  timed "ub_f20_$m" "$UB" -i "$T/f20" -o "$T/ub20_$m" -n realesrgan-$m -m "$E/models" -s 4 -g 0 -f png
  # agreement
  for pair in "ours_${m}_fp32:py_$m" "ours_${m}_fp16:py_$m" "ours_${m}_bf16:py_$m" "ub_$m:py_$m" "ours_${m}_fp32:ub_$m" "ours_${m}_fp16:ub_$m"; do
    a=${pair%%:*}; b=${pair##*:}
    [ -d "$T/$a" ] && [ -d "$T/$b" ] || continue
    "$F2S" compare-images "$T/$a" "$T/$b" --threshold 32 --halo 3 | tail -n +2 | sed "s/^/$m,$a,$b,/" >> "$T/agree.csv"
  done
done
{ echo "model,a,b,name,psnr_all,psnr_sane,outlier_px,excluded_px,pixels"; cat "$T/agree.csv" 2>/dev/null; } > "$CSV"

python3 - "$TIMES" "$CSV" "$MD" <<'PY'
import csv, sys, collections
times = {r['label']: (int(r['rc']), int(r['ms'])) for r in csv.DictReader(open(sys.argv[1]))}
rows = list(csv.DictReader(open(sys.argv[2])))
o = open(sys.argv[3], 'w')
o.write('## Real-ESRGAN on the GPU\n\n### Speed, 512x512 -> 2048x2048 (wall time of the whole process, ms)\n\n')
o.write('| model | upscayl-bin (Vulkan) run 1 / 2 | ours fp16 run 1 / 2 | ours bf16 run 1 / 2 |\n|---|---|---|---|\n')
for m in ['x4fast', 'x4plus']:
    g = lambda k: times.get(k, (1, -1))
    f = lambda p: ' / '.join(f"{g(p+str(r))[1]}{'' if g(p+str(r))[0]==0 else ' (rc '+str(g(p+str(r))[0])+')'}" for r in (1, 2))
    o.write(f"| {m} | {f('ub_single_'+m+'_')} | {f('ours_single_'+m+'_fp16_')} | {f('ours_single_'+m+'_bf16_')} |\n")
o.write('\n### Throughput (images/s, 512x512 -> 2048x2048 PNG, whole process)\n\n| model | ours fp16, 100 images | upscayl-bin, 20 images |\n|---|---|---|\n')
for m in ['x4fast', 'x4plus']:
    a = times.get(f'ours_f100_{m}_fp16', (1, 0)); b = times.get(f'ub_f20_{m}', (1, 0))
    ra = f"{100000/a[1]:.2f}" if a[0] == 0 and a[1] > 0 else f"failed rc {a[0]}"
    rb = f"{20000/b[1]:.2f}" if b[0] == 0 and b[1] > 0 else f"failed rc {b[0]}"
    o.write(f"| {m} | {ra} | {rb} |\n")
o.write('\n### Agreement on 6 photos (PSNR dB, mean over photos; sane = excluding pixels off by > 32/255 and a 3-px halo)\n\n')
o.write('| model | A | B (reference) | PSNR all | PSNR sane (min) | excluded px (of 6 x 4.19 M) |\n|---|---|---|---|---|---|\n')
agg = collections.OrderedDict()
for r in rows:
    agg.setdefault((r['model'], r['a'], r['b']), []).append(r)
for (m, a, b), rs in agg.items():
    pa = sum(float(r['psnr_all']) for r in rs) / len(rs); ps = [float(r['psnr_sane']) for r in rs]
    ex = sum(int(r['excluded_px']) for r in rs)
    o.write(f"| {m} | {a} | {b} | {pa:.2f} | {sum(ps)/len(ps):.2f} ({min(ps):.2f}) | {ex} |\n")
o.close()
print(open(sys.argv[3]).read())
PY
ls -la "$OUT"
