#!/usr/bin/env bash
# Evaluate a v2 candidate against x4plus and v1 on the held-out games, under both degradations, then
# apply the ship gate (gate.py). Run from anywhere; CPU, one thread unless THREADS says otherwise.
#
#   CANDIDATE=.devrun/experiments/v2/models/net_g_1500.pth recipes/soccer_x4plus/eval_v2.sh
#
# CANDIDATE: the weights file (its EMA, params_ema, is what loads). OUT: report root (default .devrun/eval_v2).
# V1 (default soccer-x4plus): the model v2 would replace; give the v1 .safetensors once v2 has replaced it.
# BASELINES: a folder with training/ and web/ reports of x4plus and V1 made earlier with the same seed: then
# only the candidate is run (same LQ) and the gate merges the reports.
# Needs prepare.py's .devrun/soccer (eval/hr, eval/labels) and the NIQE params fitted on the training GT:
#   soccersr eval fit-niqe .devrun/soccer/train/hr -o .devrun/soccer/niqe_soccer_train.npz
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${CANDIDATE:?CANDIDATE: the v2 weights file}"
OUT=${OUT:-.devrun/eval_v2}
V1=${V1:-soccer-x4plus}
THREADS=${THREADS:-1}
DATA=.devrun/soccer
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" SOCCERSR_CACHE_DIR="$PWD/.devrun/cache"
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
PY=${PY:-.venv/bin/python}
# Labels: the file stems, so the v1 file and the candidate do not both read "soccer-x4plus".
mkdir -p "$OUT"
CAND="$OUT/v2.${CANDIDATE##*.}"
ln -sf "$(realpath "$CANDIDATE")" "$CAND"
MODELS=(--model x4plus --model "$V1" --model "$CAND")
GATE_REPORTS=()
if [ -n "${BASELINES:-}" ]; then
    MODELS=(--model "$CAND")
    GATE_REPORTS=("$BASELINES/training/report.json" "$BASELINES/web/report.json")
fi
for kind in training web; do
    $PY -m soccersr.cli eval "${MODELS[@]}" --hr "$DATA/eval/hr" \
        --boxes "$DATA/eval/labels" --seed 0 --degradation "$kind" --device cpu --precision fp32 \
        --niqe-params "$DATA/niqe_soccer_train.npz" --report "$OUT/$kind"
done
$PY recipes/soccer_x4plus/gate.py "${GATE_REPORTS[@]}" "$OUT/training/report.json" "$OUT/web/report.json" --candidate v2 \
    --stock x4plus --previous "$(basename "${V1%.*}")" --json "$OUT/gate.json"
