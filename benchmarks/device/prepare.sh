#!/usr/bin/env bash
# Prepare, on THIS machine, what the device check carries to the GPU machine (which has no network):
#   .device-wheels/   the Python packages its image lacks, as cp312 manylinux wheels, slimmed to fit
#                     the device tool's 64 MiB tree limit (bitsandbytes keeps only its CUDA 13.0 and
#                     CPU libraries; espeak-ng only its English dictionary; babel only root/en
#                     locales; misaki drops the English/Japanese lexicons its espeak backend never reads)
#   .device-public/LivePortrait/   src/modules/*.py, src/config/models.yaml and LICENSE of
#                     KwaiVGI/LivePortrait (MIT), for the frame-by-frame comparison; taken from the
#                     session's fetched mirror (the `fetch` tool: github:KwaiVGI/LivePortrait). Never
#                     committed: both folders go into .git/info/exclude.
# The image already has torch (cu130), transformers, accelerate, safetensors, onnxruntime, numpy,
# pyyaml, pillow, psutil, huggingface-hub, tokenizers, sentencepiece, regex, attrs, joblib
# (.library/device/KINDS.md); Vortex itself runs from src/ (PYTHONPATH), not from a wheel.
#
#   bash benchmarks/device/prepare.sh [MIRROR]      MIRROR default: /work/.mirror/KwaiVGI+LivePortrait/repo
set -euo pipefail
cd "$(dirname "$0")/../.."
WHEELS=.device-wheels
PUBLIC=.device-public/LivePortrait
MIRROR=${1:-/work/.mirror/KwaiVGI+LivePortrait/repo}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python

EXCLUDE=$(git rev-parse --git-path info/exclude)  # .git is a file in a worktree: ask git where it is
mkdir -p "$(dirname "$EXCLUDE")"
for line in '/.device-wheels/' '/.device-public/'; do
  grep -qxF "$line" "$EXCLUDE" 2>/dev/null || echo "$line" >> "$EXCLUDE"
done

# Versions: what the project's tests run here (diffusers 0.42.1, kokoro/misaki 0.9.4, bitsandbytes 0.50.2, av 18.1.0).
PACKAGES=(
  diffusers==0.42.1 bitsandbytes==0.50.2 av==18.1.0
  kokoro==0.9.4 loguru==0.7.3 misaki==0.9.4 addict==2.4.0 espeakng-loader==0.2.4
  phonemizer-fork==3.3.2 segments==2.4.0 csvw==4.1.1 babel==2.19.0 rdflib==7.6.0 isodate==0.7.2
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  language-tags==1.3.2 rfc3986==1.5.0 uritemplate==4.2.0 dlinfo==2.0.0
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
)
rm -rf "$WHEELS" && mkdir -p "$WHEELS"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
  -d "$WHEELS" "${PACKAGES[@]}"

SLIM=benchmarks/device/slim_wheel.py
"$PY" $SLIM "$WHEELS"/bitsandbytes-*.whl --drop 'bitsandbytes/libbitsandbytes_*' \
  --keep 'bitsandbytes/libbitsandbytes_cuda130.so' --keep 'bitsandbytes/libbitsandbytes_cpu.so'
"$PY" $SLIM "$WHEELS"/espeakng_loader-*.whl --drop 'espeakng_loader/espeak-ng-data/*_dict' \
  --keep 'espeakng_loader/espeak-ng-data/en_dict'
"$PY" $SLIM "$WHEELS"/babel-*.whl --drop 'babel/locale-data/*.dat' \
  --keep 'babel/locale-data/root.dat' --keep 'babel/locale-data/en.dat' --keep 'babel/locale-data/en_US*.dat'
"$PY" $SLIM "$WHEELS"/misaki-*.whl --drop 'misaki/data/*.json' --drop 'misaki/data/*.txt'

if [ -d "$MIRROR" ]; then
  rm -rf "$PUBLIC" && mkdir -p "$PUBLIC"
  git --git-dir="$MIRROR" archive HEAD src/modules src/config/models.yaml LICENSE 2>/dev/null | tar -x -C "$PUBLIC" \
    || git --git-dir="$MIRROR/.git" archive HEAD src/modules src/config/models.yaml LICENSE | tar -x -C "$PUBLIC"
  echo "public LivePortrait code: $PUBLIC ($(git --git-dir="$MIRROR" rev-parse --short HEAD 2>/dev/null || echo '?'))"
else
  echo "no LivePortrait mirror at $MIRROR: fetch github:KwaiVGI/LivePortrait first, or the comparison is skipped"
fi

echo "carried: $(du -sh "$WHEELS" | cut -f1) wheels ($(ls "$WHEELS" | wc -l) files), $(du -sh .device-public 2>/dev/null | cut -f1) public code"
echo "tree (tracked + untracked, not ignored): $(git ls-files -co --exclude-standard -z | du -ch --files0-from=- 2>/dev/null | tail -1 | cut -f1)"
