"""soccersr.io.hashing: the sha256 of a file, as hashlib gives it for the bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from soccersr.io.hashing import file_sha256


def test_file_sha256_matches_hashlib_over_several_read_blocks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000 + b"tail"  # 2.4 MiB: more than one read of file_digest
    (tmp_path / "blob").write_bytes(data)
    assert file_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(str(tmp_path / "empty")) == hashlib.sha256(b"").hexdigest()
