"""Training: Real-ESRNet / Real-ESRGAN fine-tuning with the on-the-fly second-order degradation.

    from soccersr.train import load_config, train
    result = train(load_config("configs/finetune_soccer_x4plus.yml", ["train.total_iter=1000"]))

Modules: ``config`` (YAML -> frozen dataclasses), ``step`` (one iteration), ``loop`` (the run),
``checkpoint``, ``validate``, ``losses`` / ``vgg`` / ``ema``, ``data`` (per-rank batches),
``distributed`` (torchrun), ``logs``, ``build`` (networks, optimisers, schedulers).
"""

from soccersr.train.config import ConfigError, TrainingConfig, dump_config, load_config, parse_config
from soccersr.train.loop import TrainError, TrainResult, train

__all__ = [
    "ConfigError",
    "TrainError",
    "TrainResult",
    "TrainingConfig",
    "dump_config",
    "load_config",
    "parse_config",
    "train",
]
