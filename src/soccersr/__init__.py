"""soccersr: x4 super-resolution for soccer photos (Real-ESRGAN), and a fine-tune pipeline for match footage.

Public API::

    import soccersr
    model = soccersr.load_model("soccer-x4plus")   # built-in name, or a .pth/.safetensors/.pdparams path
    upscaler = soccersr.Upscaler(model, device="auto")
    out = upscaler.upscale(batch)                    # (B,3,H,W) float RGB in [0,1] -> (B,3,4H,4W)

``Upscaler`` holds no per-call state: one instance can serve several threads at once.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["SRModel", "Upscaler", "WeightsError", "__version__", "list_models", "load_model"]


def __getattr__(name: str) -> Any:
    # Resolved on first use, so `import soccersr` (and `soccersr --help`) does not import torch.
    if name == "Upscaler":
        from soccersr.infer.engine import Upscaler

        return Upscaler
    if name in ("SRModel", "WeightsError", "list_models", "load_model"):
        import soccersr.weights

        return getattr(soccersr.weights, name)
    raise AttributeError(f"module 'soccersr' has no attribute {name!r}")
