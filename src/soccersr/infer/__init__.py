"""Inference: everything between a decoded image and an upscaled one.

- ``engine``: ``Upscaler``, the one tiled inference engine every entry point uses, and the
  ``TileRunner`` protocol backends implement.
- ``tiling``: tile geometry (pure integer arithmetic).
- ``torch_runner``: the PyTorch backend (CPU / CUDA, fp32 / fp16 / bf16).
- ``devices``: device and precision choice, memory estimates for the tile size.
- ``pipeline``, ``batch``: what happens around the engine for one photo and for many files
  (reading and writing the files themselves is ``soccersr.io``).

Nothing is imported here, so ``import soccersr.infer.pipeline`` does not pull in the engine.
"""
