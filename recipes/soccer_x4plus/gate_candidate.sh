#!/usr/bin/env bash
# Score a candidate model against the stock model it must beat (and the model it would replace) on the
# held-out games, under both degradations, then apply the ship gate (gate.py). Run from anywhere.
#
#   CANDIDATE=.devrun/experiments/v2/models/net_g_1500.pth PREVIOUS=soccer-x4plus recipes/soccer_x4plus/gate_candidate.sh
#   CANDIDATE=.devrun/experiments/compact_web/models/net_g_1000.pth STOCK=animevideov3 OUT=.devrun/gate_compact \
#       recipes/soccer_x4plus/gate_candidate.sh
#
# CANDIDATE: the weights file (its EMA, params_ema, is what loads); it is labelled "candidate" in the reports.
# STOCK (default x4plus): the model the gate compares with. PREVIOUS (optional): the model the candidate would
# replace (naturalness must beat it too). OUT: report root (default .devrun/gate).
# BASELINES: a folder with training/ and web/ reports of STOCK (and PREVIOUS) made earlier with the same seed:
# then only the candidate runs (same LQ) and the gate merges the reports.
# DEVICE / ENGINE / PRECISION (default cpu / openvino / bf16, as the shipped reports; bf16 agrees with fp32 to
# 52 dB; on a GPU: DEVICE=cuda ENGINE=torch PRECISION=fp16), THREADS.
# Needs prepare.py's .devrun/soccer (eval/hr, eval/labels) and the NIQE params fitted on the training GT:
#   soccersr eval fit-niqe .devrun/soccer/train/hr -o .devrun/soccer/niqe_soccer_train.npz
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${CANDIDATE:?CANDIDATE: the weights file to score}"
OUT=${OUT:-.devrun/gate}
STOCK=${STOCK:-x4plus}
PREVIOUS=${PREVIOUS:-}
THREADS=${THREADS:-2}
DATA=.devrun/soccer
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" SOCCERSR_CACHE_DIR="$PWD/.devrun/cache"
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
PY=${PY:-.venv/bin/python}
# Labels are file stems: a link named "candidate" keeps it apart from a built-in of the same name.
mkdir -p "$OUT"
CAND="$OUT/candidate.${CANDIDATE##*.}"
ln -sf "$(realpath "$CANDIDATE")" "$CAND"
MODELS=(--model "$STOCK" ${PREVIOUS:+--model "$PREVIOUS"} --model "$CAND")
GATE_REPORTS=()
if [ -n "${BASELINES:-}" ]; then
    MODELS=(--model "$CAND")
    GATE_REPORTS=("$BASELINES/training/report.json" "$BASELINES/web/report.json")
fi
for kind in training web; do
    $PY -m soccersr.cli eval "${MODELS[@]}" --hr "$DATA/eval/hr" \
        --boxes "$DATA/eval/labels" --seed 0 --degradation "$kind" \
        --device "${DEVICE:-cpu}" --engine "${ENGINE:-openvino}" --precision "${PRECISION:-bf16}" \
        --niqe-params "$DATA/niqe_soccer_train.npz" --report "$OUT/$kind"
done
$PY recipes/soccer_x4plus/gate.py "${GATE_REPORTS[@]}" "$OUT/training/report.json" "$OUT/web/report.json" \
    --candidate candidate --stock "$(basename "${STOCK%.*}")" ${PREVIOUS:+--previous "$(basename "${PREVIOUS%.*}")"} --json "$OUT/gate.json"
