#!/usr/bin/env bash
# One training session for soccer-x4plus: on the GPU machine (device tool: ~15 minutes per session,
# one command of <= 10), or on the CPU when no GPU is lent (PROFILE=cpu: hours, small patches).
# Run from the repo root, after, here:
#   python recipes/soccer_x4plus/prepare.py collect --shared ../shared/data/soccer-hr -o .devrun/soccer
#   SOCCERSR_CACHE_DIR=.devrun/cache python -c "import soccersr; [soccersr.load_model(m) for m in ('x4plus', 'animevideov3')]"
# and carry [.devrun/soccer/sources, .devrun/cache]. The device tool's limit is 64 MiB (67.1 MB) with the
# work tree, and the tracked files alone are 36.5 MB (the shipped soccer-x4plus is 33 MB of them). Measured
# 2026-12-03: sources without eval/ are 37.9 MB (train 22.9, the clip frames 12.6, val 1.8), so they no longer
# fit; without train_clips/ they do (61.8 MB in all). The float32 ImageNet VGG16 of the perceptual loss
# (58.9 MB) never fits beside them: a session with the perceptual loss carries gpu_carry.sh's folder instead
# (a subset of the sources and the int8 VGG16: "The v2 chain on a GPU" below). Without it, only L1 + GAN
# stages can run (v1's recipe, -o train.perceptual_opt.perceptual_weight=0): start from the shipped model
# (TRAIN_EXTRA="-o path.pretrain_network_g=soccer-x4plus": no cache needed), run STEPS="train pack" (the
# tests and bench steps load x4plus from the cache: run them in a session of their own), and run the eval
# step here on the joined file (about 5 minutes on the CPU).
# The GPU machine has no sr-vulkan package: a verified cache file is used as it is. Steps (env STEPS, default all of them
# but chain and choose):
#   tests  the CUDA cases of the suite (engine fp16/bf16 + overflow retry, degradation, train step)
#   bench  CUDA upscale benchmark (fp16/bf16 vs the official-style reference)
#   train  build the data, fine-tune for TRAIN_MIN minutes (default 5 on CUDA, 300 on the CPU)
#   chain  v2's two stages in one session instead of train (see "The v2 chain on a GPU" below)
#   choose score the chain's GAN checkpoints on the validation game against carried baselines (choose.py)
#          and pack the chosen one (MODEL)
#   pack   the EMA generator as fp16 safetensors in <16 MB parts with sha256 (recipes/.../finish.py joins them)
#   eval   x4plus vs the packed fp16 fine-tune (the file that ships) on the held-out games
#          (whole frames and players) + sheets
# PROFILE (env): cuda (default): the recipe as written, batch 12 x 256^2.
#                cpu: batch 4 x 128^2, 50 D-only warm-up steps, lr halved at 4000, 300 minutes (bf16 where native).
#                dry: the same steps tiny, on the CPU, to check the script before spending GPU time.
# TRAIN_EXTRA (env): more training overrides, appended to the profile's ("-o key=value -o ...", split on spaces).
# EXP (env): the experiment folder; give each session its own, so no step picks up an earlier run's files.
#
# The v2 chain on a GPU (issue 12): the CPU runs the chain at about 335 minutes per candidate (fresh D); one H200
# session runs it in minutes. The int8 VGG16 (xz) makes the perceptual stage fit the carry:
#   GPU=1 recipes/soccer_x4plus/setup_devrun.sh   # here, on a fresh machine: data, baselines, then gpu_carry.sh
#   (or recipes/soccer_x4plus/gpu_carry.sh alone where .devrun has the rest: builds .devrun/gpu, checks its size)
#   then one device call, carry [.devrun/gpu], timeout 560:
#   OUT=$OUT STEPS="chain choose pack" recipes/soccer_x4plus/session.sh
#   Back here: finish.py join the parts, then gate_candidate.py on the held-out games (the CPU has x4plus).
# The stages are the CPU lines' recipes (results/v2pr, results/v2w; v2s's fresh D with 50 warm-up steps)
# at the CUDA batch, 12 x 256^2: 12 times the CPU's 4 x 128^2 pixels per iteration, so FIDELITY_ITERS=500
# is about 2.8 times v2pr's 2125 CPU iterations, and GAN checkpoints every 50 (to GAN_ITERS=400) span
# 600 to 4800 CPU-equivalent iterations, around the CPU picks (900-1050).
# Knobs (env): FIDELITY_ITERS, FIDELITY_MIN (3), GAN_ITERS, GAN_EVERY, GAN_MIN (4), GAN_D_WARMUP (50), and the
# timeouts BUILD_TIMEOUT (300 s) and CHOOSE_TIMEOUT (420 s), ample on the GPU machine. The dry profile checks
# the chain here in about 30 minutes on a 2-core CPU with one validation frame:
#   BUILD_TIMEOUT=1500 CHOOSE_TIMEOUT=1500 PROFILE=dry STEPS="chain choose pack" FIDELITY_ITERS=3 GAN_ITERS=4 \
#       GAN_EVERY=2 GAN_D_WARMUP=1 PY=.venv/bin/python recipes/soccer_x4plus/session.sh   (in a clone with .devrun/gpu)
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

GPU_CARRY=${GPU_CARRY:-.devrun/gpu}  # gpu_carry.sh's output: a subset of the sources, the int8 VGG16, the baselines
if [ -d "$GPU_CARRY/soccer/sources" ] && [ ! -e "$DATA/sources" ]; then
    mkdir -p "$DATA" && ln -s "$PWD/$GPU_CARRY/soccer/sources" "$DATA/sources"
    cp "$GPU_CARRY/soccer/niqe_soccer_train.npz" "$DATA/"  # the fit the baselines were scored with
    log "data: the sources carried in $GPU_CARRY"
fi
VGG_CACHE=$SOCCERSR_CACHE_DIR/vgg16_imagenet.safetensors
if [ -f "$GPU_CARRY/vgg16_int8.safetensors.xz" ] && [ ! -f "$VGG_CACHE" ]; then
    # Python's lzma: the GPU machine may have no xz tool.
    mkdir -p "$SOCCERSR_CACHE_DIR" && $PY -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
        "$GPU_CARRY/vgg16_int8.safetensors.xz" "$VGG_CACHE.part" && mv "$VGG_CACHE.part" "$VGG_CACHE" \
        && log "vgg: the int8 VGG16 carried in $GPU_CARRY, unpacked"
fi

EVAL_LIMIT=()
EVAL_HR=$DATA/eval/hr
CHOOSE_DATA=$DATA
case "$PROFILE" in
cuda)
    DEVICE=cuda TRAIN_MIN=${TRAIN_MIN:-5}
    TRAIN_ARGS=() ;;
cpu)
    # v2 (issue 12): bf16 autocast + channels_last where the CPU has native bf16 (precision auto);
    # v1 ran fp32, 75 min, with num_worker_per_gpu 2, net_d_init_iters 100 and milestones [1000].
    DEVICE=cpu TRAIN_MIN=${TRAIN_MIN:-300}
    TRAIN_ARGS=(-o datasets.train.batch_size_per_gpu=4 -o datasets.train.gt_size=128
                -o datasets.train.queue_size=40 -o datasets.train.num_worker_per_gpu=1 -o train.net_d_init_iters=50
                -o train.total_iter=100000 -o "train.scheduler.milestones=[4000]" -o val.val_freq=300
                -o logger.save_checkpoint_freq=300 -o logger.print_freq=25) ;;
dry)
    DEVICE=cpu TRAIN_MIN=1
    TRAIN_ARGS=(-o train.total_iter=3 -o datasets.train.batch_size_per_gpu=2 -o datasets.train.gt_size=64
                -o datasets.train.queue_size=4 -o train.net_d_init_iters=1 -o val.val_freq=3
                -o logger.save_checkpoint_freq=3 -o logger.print_freq=1 -o datasets.train.num_worker_per_gpu=1)
    EVAL_LIMIT=(--max-images 2)
    EVAL_HR=.devrun/eval_dry/hr  # two frames (copied once the data is built): the CPU is slow
    CHOOSE_DATA=.devrun/val_dry  # one validation frame for the in-training validation and choose, likewise
    TRAIN_ARGS+=(-o "datasets.val.dataroot_lq=$CHOOSE_DATA/val/lq" -o "datasets.val.dataroot_gt=$CHOOSE_DATA/val/hr") ;;
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

build_data() {
    log "build data"
    # 300 s is ample on the GPU machine's 16 cores; the 2-core CPU needs about 10 minutes (BUILD_TIMEOUT).
    timeout "${BUILD_TIMEOUT:-300}" $PY recipes/soccer_x4plus/prepare.py build -o "$DATA" --workers 8 2>&1 | tail -3 | tee -a "$OUT/session.log"
    # The perceptual loss needs the ImageNet VGG16 of `soccersr vgg import` in the cache (carry it); without
    # it the run stops (v1 trained with L1 + GAN only: add -o train.perceptual_opt.perceptual_weight=0 to TRAIN_EXTRA).
    [ -f "$VGG_CACHE" ] || log "no $VGG_CACHE: run soccersr vgg import first"
    if [ "$CHOOSE_DATA" != "$DATA" ]; then
        local first
        first=$(ls "$DATA/val/hr" | head -1)
        rm -rf "$CHOOSE_DATA" && mkdir -p "$CHOOSE_DATA"/val/{hr,lq,labels}
        cp "$DATA/val/hr/$first" "$CHOOSE_DATA/val/hr/" && cp "$DATA/val/lq/$first" "$CHOOSE_DATA/val/lq/"
        cp "$DATA/val/labels/${first%.*}.txt" "$CHOOSE_DATA/val/labels/" && cp "$DATA/niqe_soccer_train.npz" "$CHOOSE_DATA/"
    fi
}
# fine_tune MINUTES ARGS...: one training run, its log's tail in the session log.
fine_tune() {
    local minutes=$1
    shift
    case $minutes in ''|*[!0-9]*) log "minutes must be whole, got '$minutes'"; exit 2 ;; esac
    log "train: fine-tune (${TRAIN_ARGS[*]} $*)"
    timeout $((minutes * 60 + 240)) $PY -m soccersr.cli train --config configs/soccer_x4plus.yml --device "$DEVICE" \
        -o "path.experiments_root=$EXP" "${TRAIN_ARGS[@]}" -o "train.time_limit_min=$minutes" "$@" 2>&1 \
        | grep -v "^\s*$" | tail -40 | tee -a "$OUT/session.log"
}
read -r -a EXTRA <<< "${TRAIN_EXTRA:-}"

if has train; then
    build_data
    fine_tune "$TRAIN_MIN" "${EXTRA[@]}"
fi

if has chain; then
    FIDELITY_ITERS=${FIDELITY_ITERS:-500} GAN_ITERS=${GAN_ITERS:-400} GAN_EVERY=${GAN_EVERY:-50}
    MASKS=(-o "datasets.train.dataroot_mask=$DATA/train/masks")
    build_data
    # Stage 1, results/v2pr: L1 only (the GAN-stage keys null), players x10, plain GT, 30% web; lr halved near the end.
    fine_tune "${FIDELITY_MIN:-3}" -o name=fidelity -o path.pretrain_network_g=soccer-x4plus \
        -o model_type=RealESRNetModel -o network_d=null -o train.optim_d=null -o train.perceptual_opt=null \
        -o train.gan_opt=null -o train.l1_gt_usm=null -o train.percep_gt_usm=null -o train.gan_gt_usm=null \
        -o train.gt_usm=false -o train.net_d_init_iters=0 -o datasets.train.web_prob=0.3 \
        -o train.pixel_opt.player_weight=10 "${MASKS[@]}" -o "train.total_iter=$FIDELITY_ITERS" \
        -o "train.scheduler.milestones=[$((FIDELITY_ITERS * 93 / 100))]" \
        -o "val.val_freq=$FIDELITY_ITERS" -o "logger.save_checkpoint_freq=$FIDELITY_ITERS" "${EXTRA[@]}"
    START=$(ls "$EXP"/fidelity/models/net_g_*.pth 2>/dev/null | sort -V | tail -1)
    if [ -z "$START" ]; then
        log "chain: the fidelity stage left no checkpoint"
    else
        # Stage 2, results/v2w (v2s's fresh D): VGG16 perceptual + GAN off the players, players x20 in a
        # plain-GT L1, 60% web inputs; a checkpoint (and validation) every GAN_EVERY for choose.
        fine_tune "${GAN_MIN:-4}" -o name=gan -o "path.pretrain_network_g=$START" -o "train.net_d_init_iters=${GAN_D_WARMUP:-50}" \
            -o datasets.train.web_prob=0.6 -o train.pixel_opt.player_weight=20 "${MASKS[@]}" -o train.l1_gt_usm=false \
            -o train.texture_losses_off_players=true -o "train.total_iter=$GAN_ITERS" \
            -o "train.scheduler.milestones=[$((GAN_ITERS * 2))]" -o "val.val_freq=$GAN_EVERY" \
            -o "logger.save_checkpoint_freq=$GAN_EVERY" "${EXTRA[@]}"
    fi
fi

if has choose; then
    mapfile -t CANDIDATES < <(ls "$EXP"/gan/models/net_g_*.pth 2>/dev/null | sort -V)
    if [ ${#CANDIDATES[@]} -eq 0 ]; then
        log "choose: no GAN checkpoints in $EXP/gan/models"
    else
        log "choose: ${#CANDIDATES[@]} checkpoints on the validation game (baselines: $GPU_CARRY/baselines)"
        # fp32, to compare with the baselines the CPU scored in fp32 (OpenVINO) on the same seeded LQ; on
        # the CPU (dry) OpenVINO too: PyTorch fp32 takes minutes per frame there.
        ENGINE=openvino && [ "$DEVICE" = cuda ] && ENGINE=torch
        timeout "${CHOOSE_TIMEOUT:-420}" $PY recipes/soccer_x4plus/choose.py "${CANDIDATES[@]}" --previous soccer-x4plus \
            --baselines "$GPU_CARRY/baselines" --data "$CHOOSE_DATA" --device "$DEVICE" --engine $ENGINE --precision fp32 \
            -o "$EXP/choose" 2>&1 | grep -v "^INFO" | tail -30 | tee -a "$OUT/session.log"
        cp "$EXP/choose/choice.md" "$OUT/" 2>/dev/null
        MODEL=${MODEL:-$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['file'])" "$EXP/choose/choice.json" 2>/dev/null)}
    fi
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
tar -czf "$OUT/reports.tar.gz" -C "$EXP" --ignore-failed-read eval soccer_x4plus/logs soccer_x4plus/config.yml \
    fidelity/logs gan/logs gan/config.yml choose/choice.md choose/choice.json choose/training choose/web 2>/dev/null
log "done"
