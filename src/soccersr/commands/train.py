"""`soccersr train`: train or fine-tune Real-ESRNet / Real-ESRGAN from a BasicSR-style YAML config.

Multi-GPU: ``torchrun --nproc_per_node N -m soccersr.cli train --config FILE.yml``.
Exit codes: 0 done, 1 the run failed (data, checkpoint, divergence), 2 a bad config or option.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train or fine-tune Real-ESRNet / Real-ESRGAN",
        description="Train or fine-tune Real-ESRNet (L1) or Real-ESRGAN (L1 + VGG19 perceptual + GAN) with the "
        "on-the-fly second-order degradation. Writes checkpoints, logs and the resolved config to "
        "experiments_root/name. Example configs: configs/finetune_soccer_x4plus.yml, configs/train_realesrnet_x4plus.yml.",
    )
    parser.add_argument(
        "--config", required=True, metavar="FILE.yml", help="training config (BasicSR / Real-ESRGAN keys)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", metavar="PATH", help="continue from this training state (<iter>.state)")
    group.add_argument(
        "--auto-resume", action="store_true", help="continue from the newest training state of this experiment, if any"
    )
    parser.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. -o train.total_iter=1000 (value read as YAML; repeatable)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda (default auto)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from soccersr.commands.extras import require

    # The config is YAML and the datasets read image headers with pillow: both come with [train].
    require("training", "yaml", "PIL")
    from soccersr.train import ConfigError, load_config, train

    # Every error of the run (config, data, checkpoints, VGG weights, ...) is a SoccersrError:
    # cli.main prints its one line and returns its exit code (2 for a bad config, else 1).
    cfg = load_config(args.config, args.override)
    try:
        result = train(cfg, resume=args.resume, auto_resume=args.auto_resume, device=args.device)
    except ConfigError as e:
        raise ConfigError(f"{args.config}: {e}") from None
    except OSError as e:  # a log or validation folder that cannot be written, say
        where = f"{e.filename}: " if e.filename else ""
        print(f"soccersr train: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    print(f"done: iteration {result.iteration}, outputs in {result.experiment_dir}")
    if result.last_state is not None:
        print(f"last training state: {result.last_state}")
    return 0
