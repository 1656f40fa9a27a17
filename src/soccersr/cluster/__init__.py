"""Upscaling an archive on many machines: ``soccersr upscale --cluster ray``.

- ``ray_job``: the driver. It lists the inputs and applies the batch rules exactly as the local
  command does (``infer.batch``), then runs a Ray Data pipeline over the file list and prints
  the same summary.
- ``worker``: the callable class of ``map_batches``. Each Ray actor builds its engine once, then
  reads, upscales and writes each file itself (``infer.batch.upscale_job``), atomically, to the
  shared output folder.
- ``manifest``: one CSV row per input in the output folder, so a rerun skips finished work.

Ray is an optional dependency (``pip install 'soccersr[ray]'``); only these modules import it,
and only inside functions.
"""
