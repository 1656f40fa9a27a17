"""The bottom layer: files in and out. It imports nothing else from soccersr but ``errors``.

- ``images``: read and write photos (bit depth, alpha, gray, EXIF orientation, ICC/EXIF kept).
- ``metadata``: the container bytes around the pixels (EXIF, ICC) per format.
- ``atomic``: every file soccersr writes goes through ``atomic_write``.
- ``hashing``: file checksums.

Nothing is imported here, so ``import soccersr.io.atomic`` stays light.
"""
