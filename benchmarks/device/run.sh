#!/usr/bin/env bash
# The device check in ONE call of the device tool (see check.py; about 6-8 minutes on an H100):
#   command: bash benchmarks/device/run.sh            carry: [".device-wheels", ".device-public"]
# First, on the machine with the checkout: bash benchmarks/device/prepare.sh (the wheels the GPU
# image lacks, and the public LivePortrait code for the comparison). Everything lands in $OUT:
# check.md (tables), check.json, bench-rtx3060-12gb.json, bench-fastest.json, check.log, setup.log.
set -uo pipefail
OUT=${OUT:-out/device-check}
mkdir -p "$OUT"
{
  echo "== carried wheels -> python3 (no network; --no-deps: the image has torch, transformers, accelerate ...)"
  python3 -m pip install -q --no-index --no-deps --disable-pip-version-check --root-user-action=ignore \
    .device-wheels/*.whl 2>&1 | tail -n 5
  python3 -c "import torch, diffusers, bitsandbytes, av; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'| diffusers', diffusers.__version__, '| bitsandbytes', bitsandbytes.__version__, '| av', av.__version__)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  ls -d .device-public/LivePortrait/src/modules 2>/dev/null || echo "no .device-public: the public comparison will be skipped"
} 2>&1 | tee "$OUT/setup.log"

export PYTHONPATH="$PWD/src" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TORCHINDUCTOR_COMPILE_THREADS=16
timeout 440 python3 benchmarks/device/check.py --out "$OUT" --budget-s 360 "$@" > "$OUT/check.log" 2>&1
status=$?
grep -E '^\[ *[0-9.]+ s\]' "$OUT/check.log" | cut -c1-300
echo "== exit $status (124: the 440 s timeout hit; sections done so far are in check.json)"
cat "$OUT/check.md"
exit $status
