"""Model weights: built-in models (no download) and safe loading of weights files.

from soccersr.weights import load_model
model = load_model("x4plus")            # built-in: converted once from the ncnn package, then cached
model = load_model("runs/ft/net_g.pth")  # .pth / .pt / .safetensors / .pdparams, architecture detected
"""

from soccersr.weights.builtin import default_cache_dir
from soccersr.weights.detect import WeightsError, detect_arch
from soccersr.weights.load import ModelInfo, list_models, load_model, load_state_dict_file
from soccersr.weights.model import SRModel

__all__ = [
    "ModelInfo",
    "SRModel",
    "WeightsError",
    "default_cache_dir",
    "detect_arch",
    "list_models",
    "load_model",
    "load_state_dict_file",
]
