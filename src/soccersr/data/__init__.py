"""Training data preparation: video -> frames -> crops -> meta_info, and the datasets that read them.

The datasets import torch, so they are not re-exported here: use ``soccersr.data.dataset``
(``HRImageDataset``, ``PairedImageDataset``). This package's own imports stay light
(numpy, OpenCV) because crop worker processes import it.
"""

from soccersr.data.crops import CropConfig, CropReport, crop_boxes, crop_folder, multiscale_sizes, window_starts
from soccersr.data.frames import FrameConfig, FrameStats, VideoError, extract_frames
from soccersr.data.meta import check_readable, read_meta_info, relative_lines, write_meta_info

__all__ = [
    "CropConfig",
    "CropReport",
    "FrameConfig",
    "FrameStats",
    "VideoError",
    "check_readable",
    "crop_boxes",
    "crop_folder",
    "extract_frames",
    "multiscale_sizes",
    "read_meta_info",
    "relative_lines",
    "window_starts",
    "write_meta_info",
]
