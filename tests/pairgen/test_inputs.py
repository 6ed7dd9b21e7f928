"""Which videos a run covers: manifests (JSONL, CSV, Parquet), folders, S3 prefixes, and their errors."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synpo.storage import Storage
from synpo.video.manifest import InputError, read_inputs


def test_manifest_formats_agree_and_relative_paths_resolve(tmp_path):
    storage = Storage()
    rows = [{"video": "clips/a.mp4", "id": "first", "prompt": "Say what happens."}, {"video": "/data/b.mp4"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    (tmp_path / "m.csv").write_text("video,id,prompt\nclips/a.mp4,first,Say what happens.\n/data/b.mp4,,\n")
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    (tmp_path / "m.parquet").write_bytes(buffer.getvalue())
    expected = [
        {"video_id": "first", "video": f"{tmp_path}/clips/a.mp4", "prompt": "Say what happens."},
        {"video_id": "b", "video": "/data/b.mp4", "prompt": "DEFAULT"},
    ]
    for name in ("m.jsonl", "m.csv", "m.parquet"):
        assert [video.to_dict() for video in read_inputs(str(tmp_path / name), storage, "DEFAULT")] == expected
    assert len(read_inputs(str(tmp_path / "m.jsonl"), storage, "DEFAULT", limit=1)) == 1


def test_a_folder_or_prefix_lists_its_videos(toy_video_dir, s3_storage):
    storage, bucket = s3_storage
    local = read_inputs(str(toy_video_dir), Storage(), "P")
    assert [video.video_id for video in local] == ["toy-0007-00000", "toy-0007-00001", "toy-0007-00002"]
    storage.write_bytes(f"s3://{bucket}/videos/x.mp4", (toy_video_dir / "toy-0007-00000.mp4").read_bytes())
    storage.write_text(f"s3://{bucket}/videos/notes.txt", "not a video")
    assert [video.video for video in read_inputs(f"s3://{bucket}/videos", storage, "P")] == [f"s3://{bucket}/videos/x.mp4"]


def test_bad_inputs_name_the_problem(tmp_path):
    storage = Storage()
    (tmp_path / "dup.jsonl").write_text('{"video": "a/x.mp4"}\n{"video": "b/x.mp4"}\n')
    with pytest.raises(InputError, match="video id 'x' is used by .*a/x.mp4 and .*b/x.mp4"):
        read_inputs(str(tmp_path / "dup.jsonl"), storage, "P")
    (tmp_path / "novideo.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(InputError, match="row 1 has no 'video'"):
        read_inputs(str(tmp_path / "novideo.jsonl"), storage, "P")
    (tmp_path / "broken.jsonl").write_text('{"video": "a.mp4"}\n{not json\n')
    with pytest.raises(InputError, match="line 2 is not valid JSON"):
        read_inputs(str(tmp_path / "broken.jsonl"), storage, "P")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no videos in"):
        read_inputs(str(tmp_path / "empty"), storage, "P")
