#!/usr/bin/env bash
# One training session for soccer-x4plus: on the GPU machine (device tool: ~15 minutes per session,
# one command of <= 10), or on the CPU when no GPU is lent (PROFILE=cpu: hours, small patches).
# Run from the repo root, after, here:
#   python recipes/soccer_x4plus/prepare.py collect --shared ../shared/data/soccer-hr -o .devrun/soccer
#   SOCCERSR_CACHE_DIR=.devrun/cache python -c "import soccersr; [soccersr.load_model(m) for m in ('x4plus', 'animevideov3')]"
# and carry [.devrun/soccer/sources, .devrun/cache]. The device tool's limit is 64 MiB (67.1 MB) with the
# work tree, and the tracked files alone are 36.5 MB (the shipped soccer-x4plus is 33 MB of them). Measured
# 2026-12-03: sources without eval/ are 37.9 MB (train 22.9, the clip frames 12.6, val 1.8), so they no longer
# fit; without train_clips/ they do (61.8 MB in all). The ImageNet VGG16 of the perceptual loss (58.9 MB, or
# 29.4 MB in fp16) leaves no room for the training data (1.2 MB at most), so v2's GAN stage (perceptual
# loss on) cannot run on the GPU machine as the tool stands: only L1 + GAN stages can (v1's recipe,
# -o train.perceptual_opt.perceptual_weight=0). For such a session, start from the shipped model
# (TRAIN_EXTRA="-o path.pretrain_network_g=soccer-x4plus": no cache needed), run STEPS="train pack" (the
# tests and bench steps load x4plus from the cache: run them in a session of their own), and run the eval
# step here on the joined file (about 5 minutes on the CPU).
# The GPU machine has no sr-vulkan package: a verified cache file is used as it is. Steps (env STEPS, default all of them):
#   tests  the CUDA cases of the suite (engine fp16/bf16 + overflow retry, degradation, train step)
#   bench  CUDA upscale benchmark (fp16/bf16 vs the official-style reference)
#   train  build the data, fine-tune for TRAIN_MIN minutes (default 5 on CUDA, 300 on the CPU)
#   pack   the EMA generator as fp16 safetensors in <16 MB parts with sha256 (recipes/.../finish.py joins them)
#   eval   x4plus vs the packed fp16 fine-tune (the file that ships) on the held-out games
#          (whole frames and players) + sheets
# PROFILE (env): cuda (default): the recipe as written, batch 12 x 256^2.
#                cpu: batch 4 x 128^2, 50 D-only warm-up steps, lr halved at 4000, 300 minutes (bf16 where native).
#                dry: the same steps tiny, on the CPU, to check the script before spending GPU time.
# TRAIN_EXTRA (env): more training overrides, appended to the profile's ("-o key=value -o ...", split on spaces).
# EXP (env): the experiment folder; give each session its own, so no step picks up an earlier run's files.
set -uo pipefail  # a failing step shows in its pipeline's status, not hidden by tee
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 SOCCERSR_CACHE_DIR="$PWD/.devrun/cache"
OUT=${OUT:-$PWD/.devrun/out}
mkdir -p "$OUT"
STEPS=${STEPS:-"tests bench train pack eval"}
PROFILE=${PROFILE:-cuda}
DATA=.devrun/soccer
EXP=${EXP:-.devrun/experiments}
PY=${PY:-python3}
has() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
log() { echo "== $(date +%T) $*" | tee -a "$OUT/session.log"; }

EVAL_LIMIT=()
EVAL_HR=$DATA/eval/hr
case "$PROFILE" in
cuda)
    DEVICE=cuda TRAIN_MIN=${TRAIN_MIN:-5}
    TRAIN_ARGS=(-o "train.time_limit_min=$TRAIN_MIN") ;;
cpu)
    # v2 (issue 12): bf16 autocast + channels_last where the CPU has native bf16 (precision auto);
    # v1 ran fp32, 75 min, with num_worker_per_gpu 2, net_d_init_iters 100 and milestones [1000].
    DEVICE=cpu TRAIN_MIN=${TRAIN_MIN:-300}
    TRAIN_ARGS=(-o "train.time_limit_min=$TRAIN_MIN" -o datasets.train.batch_size_per_gpu=4 -o datasets.train.gt_size=128
                -o datasets.train.queue_size=40 -o datasets.train.num_worker_per_gpu=1 -o train.net_d_init_iters=50
                -o train.total_iter=100000 -o "train.scheduler.milestones=[4000]" -o val.val_freq=300
                -o logger.save_checkpoint_freq=300 -o logger.print_freq=25) ;;
dry)
    DEVICE=cpu TRAIN_MIN=1
    TRAIN_ARGS=(-o train.total_iter=3 -o datasets.train.batch_size_per_gpu=2 -o datasets.train.gt_size=64
                -o datasets.train.queue_size=4 -o train.net_d_init_iters=1 -o val.val_freq=3
                -o logger.save_checkpoint_freq=3 -o logger.print_freq=1 -o datasets.train.num_worker_per_gpu=1)
    EVAL_LIMIT=(--max-images 2)
    EVAL_HR=.devrun/eval_dry/hr ;;  # two frames (copied once the data is built): the CPU is slow
*)
    echo "PROFILE must be cuda, cpu or dry, got '$PROFILE'" >&2; exit 2 ;;
esac

log "machine"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())") | tee -a "$OUT/session.log"

if has tests && [ "$DEVICE" = cuda ]; then
    log "tests: CUDA cases"
    # The tests read the tiny crops that collect copied; files needing ncnn/PyAV are not run here.
    SOCCERSR_TEST_DEVICE=cuda SOCCERSR_SHARED_DATA="$DATA/sources/shared" timeout 240 $PY -m pytest -q -p no:cacheprovider \
        tests/test_engine.py tests/test_tiling.py tests/test_degrade_*.py tests/test_train_step.py tests/test_train_parts.py \
        2>&1 | tail -15 | tee -a "$OUT/session.log"
fi

if has bench && [ "$DEVICE" = cuda ]; then
    log "bench: upscale"
    timeout 180 $PY bench/bench_upscale.py --cuda-only --json "$OUT/bench_upscale.json" 2>&1 | tail -40 | tee -a "$OUT/session.log"
fi

if has train; then
    log "train: build data"
    timeout 300 $PY recipes/soccer_x4plus/prepare.py build -o "$DATA" --workers 8 2>&1 | tail -3 | tee -a "$OUT/session.log"
    # The perceptual loss needs the ImageNet VGG16 of `soccersr vgg import` in the cache (carry it); without
    # it the run stops (v1 trained with L1 + GAN only: add -o train.perceptual_opt.perceptual_weight=0 to TRAIN_EXTRA).
    [ -f "$SOCCERSR_CACHE_DIR/vgg16_imagenet.safetensors" ] || log "no $SOCCERSR_CACHE_DIR/vgg16_imagenet.safetensors: run soccersr vgg import first"
    read -r -a EXTRA <<< "${TRAIN_EXTRA:-}"
    TRAIN_ARGS+=("${EXTRA[@]}")
    case $TRAIN_MIN in ''|*[!0-9]*) log "TRAIN_MIN must be whole minutes, got '$TRAIN_MIN'"; exit 2 ;; esac
    log "train: fine-tune (${TRAIN_ARGS[*]})"
    timeout $((TRAIN_MIN * 60 + 240)) $PY -m soccersr.cli train --config configs/soccer_x4plus.yml --device "$DEVICE" \
        -o "path.experiments_root=$EXP" "${TRAIN_ARGS[@]}" 2>&1 | grep -v "^\s*$" | tail -60 | tee -a "$OUT/session.log"
fi

# MODEL (env): the checkpoint to pack and evaluate, chosen on the validation game; default the last one.
MODEL=${MODEL:-$(ls -t "$EXP"/soccer_x4plus/models/net_g_*.pth 2>/dev/null | head -1)}
SHIPPED=$EXP/soccer-x4plus.safetensors
EVAL_MODEL=$MODEL
if has pack && [ -n "$MODEL" ]; then
    rm -f "$SHIPPED"
    EVAL_MODEL=$SHIPPED
    log "pack: $MODEL"
    # Join here too: the evaluation measures exactly the fp16 file that would ship.
    { $PY recipes/soccer_x4plus/finish.py pack "$MODEL" -o "$OUT" && $PY recipes/soccer_x4plus/finish.py join "$OUT" -o "$SHIPPED"; } \
        2>&1 | tee -a "$OUT/session.log" || log "pack FAILED: nothing to evaluate"
fi
if has eval && [ -n "$EVAL_MODEL" ] && [ -f "$EVAL_MODEL" ]; then
    log "eval: $EVAL_MODEL vs x4plus"
    if [ "$EVAL_HR" != "$DATA/eval/hr" ]; then
        mkdir -p "$EVAL_HR" && ls "$DATA/eval/hr"/*.png | head -2 | xargs -I{} cp {} "$EVAL_HR"/
    fi
    timeout 600 $PY -m soccersr.cli eval fit-niqe "$DATA/train/hr" -o "$EXP/niqe_soccer_train.npz" "${EVAL_LIMIT[@]}" 2>&1 \
        | tail -3 | tee -a "$OUT/session.log"
    timeout 1800 $PY -m soccersr.cli eval --model x4plus --model "$EVAL_MODEL" --hr "$EVAL_HR" --boxes "$DATA/eval/labels" \
        --seed 0 --device "$DEVICE" --precision fp32 --niqe-params "$EXP/niqe_soccer_train.npz" --report "$EXP/eval" 2>&1 \
        | tail -40 | tee -a "$OUT/session.log"
fi
# At most 8 files come back from the GPU machine: the reports and logs travel as one archive.
tar -czf "$OUT/reports.tar.gz" -C "$EXP" --ignore-failed-read eval soccer_x4plus/logs soccer_x4plus/config.yml 2>/dev/null
log "done"
