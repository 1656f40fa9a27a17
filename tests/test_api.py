"""The public surface: names users import, and that the CLI starts without heavy imports."""

from __future__ import annotations

import subprocess
import sys

import soccersr


def test_public_names() -> None:
    # A name disappearing from here breaks users' code: this list changes only on purpose.
    assert soccersr.__all__ == ["SRModel", "Upscaler", "WeightsError", "__version__", "list_models", "load_model"]
    for name in soccersr.__all__:
        assert getattr(soccersr, name) is not None
    from soccersr.infer.engine import Upscaler
    from soccersr.weights import load_model

    assert soccersr.Upscaler is Upscaler and soccersr.load_model is load_model


def test_cli_help_does_not_import_torch() -> None:
    code = "import sys, soccersr.cli; soccersr.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
