"""The bottom layer: files in and out. It imports nothing from soccersr but ``errors`` and ``options``.

- ``images``: the one image reader and writer (bit depth, alpha, gray, EXIF orientation,
  EXIF/ICC kept); Pillow for 8-bit images, OpenCV for 16-bit ones.
- ``container``: the bytes around the pixels, checked before decoding (size, completeness), and
  the two metadata jobs Pillow cannot do.
- ``listing``: which files are images, and the walks over folders and globs.
- ``atomic``: every file soccersr writes goes through ``atomic_write``.
- ``hashing``: file checksums.

Nothing is imported here, so ``import soccersr.io.atomic`` stays light.
"""
