"""Match clips through the model, every frame, with the sound kept (`soccersr video`).

How a clip goes through, one module each:

- ``source``: open the file, read what it holds (``probe``) and stream its frames with their
  timestamps (``FrameReader``); a cut or damaged file is noticed, not silently shortened.
- ``convert``: decoded frames to RGB arrays and back, in the clip's own colour matrix, and the
  output size (even where 4:2:0 needs it).
- ``encode``: encoder settings and one *segment*: a run of restored frames encoded on its own
  (starting with a key frame) into a small file of the work folder.
- ``parts``: the work folder beside the output (``.NAME.parts/``): which job it belongs to and
  which segments are complete, so a killed job continues after its last complete segment.
- ``mux``: the final file, assembled from the segments without re-encoding, with the audio and
  subtitle streams copied packet for packet (or audio transcoded where the container cannot
  hold it), written atomically.
- ``job``: the whole job for one clip, with progress and a summary.

Timestamps are never made up: every output frame has its input frame's presentation time,
so variable frame rate stays variable and the sound stays in sync.
"""
