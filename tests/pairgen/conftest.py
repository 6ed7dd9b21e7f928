"""Pair-generation fixtures: toy videos, one of them corrupt."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pair_videos(tmp_path_factory) -> Path:
    """Five toy videos (seed 11, 5-12 s) plus ``broken.mp4`` (a truncated copy), with a manifest of all six."""
    import json

    from synpo.toy.videos import ToyVideoSpec, write_toy_videos

    folder = tmp_path_factory.mktemp("pair_videos")
    write_toy_videos(str(folder), count=5, seed=11, spec=ToyVideoSpec(max_duration_s=12), progress=False)
    data = (folder / "toy-0011-00000.mp4").read_bytes()
    (folder / "broken.mp4").write_bytes(data[: len(data) // 3])
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    rows.insert(2, {"id": "broken", "video": "broken.mp4"})
    (folder / "all.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder
