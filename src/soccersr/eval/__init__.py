"""Evaluation that shows whether a model is better: metrics, NIQE, player boxes, sheets, reports.

- PSNR / SSIM on the Y channel (the SR-paper definitions) are ``soccersr.metrics``, which training uses too.
- ``niqe``: the no-reference NIQE score and the fitting of its pristine model.
- ``boxes``: YOLO player boxes and the metrics restricted to them.
- ``sheets``: comparison PNGs and their HTML index.
- ``report``: winners per metric, CSV / JSON / markdown writers.
- ``inputs``: HR / LQ / box files paired by stem, the seeded synthetic LQ and its cache.
- ``runner``: ``soccersr eval`` end to end (``EvalConfig``, ``run_eval``).
"""

from soccersr.eval.inputs import EvalError
from soccersr.eval.niqe import NiqeModel, fit_niqe, load_niqe_model, niqe_score, save_niqe_model
from soccersr.eval.runner import EvalConfig, run_eval
from soccersr.metrics import psnr, ssim

__all__ = [
    "EvalConfig",
    "EvalError",
    "NiqeModel",
    "fit_niqe",
    "load_niqe_model",
    "niqe_score",
    "psnr",
    "run_eval",
    "save_niqe_model",
    "ssim",
]
