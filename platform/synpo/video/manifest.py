"""Which videos a job covers (pair generation, evaluation): a manifest file or every video under a folder/prefix.

A manifest is JSONL, CSV or Parquet with a ``video`` column (local path, ``file://`` or ``s3://``
URI; relative paths are relative to the manifest's folder) and optional ``id`` and ``prompt``
columns. Without ``id`` a video's id is its file name without the extension. Ids must be unique:
they key resume, seeds and every output row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

import pyarrow.parquet as pq

from synpo.errors import UserError
from synpo.jsonl import jsonl_objects
from synpo.storage import Storage, join_uri

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
MANIFEST_SUFFIXES = (".jsonl", ".csv", ".parquet")


class InputError(UserError, ValueError):
    """An input that cannot be used; names the file and the row."""


@dataclass(frozen=True)
class VideoInput:
    video_id: str
    video: str
    prompt: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def manifest_rows(uri: str, storage: Storage) -> list[dict]:
    """A manifest's rows as read (JSONL, CSV or Parquet), every column kept; :func:`read_inputs` checks them."""
    data = storage.read_bytes(uri)
    if uri.endswith(".parquet"):
        return pq.read_table(io.BytesIO(data)).to_pylist()
    text = data.decode("utf-8")
    if uri.endswith(".csv"):
        return list(csv.DictReader(io.StringIO(text)))
    return [row for _, row in jsonl_objects(text, uri, InputError)]


def _absolute(video: str, manifest_uri: str) -> str:
    if "://" in video or video.startswith("/"):
        return video
    return join_uri(manifest_uri.rsplit("/", 1)[0], video)


def _stem(video: str) -> str:
    return PurePosixPath(video.split("://", 1)[-1]).stem


def read_inputs(uri: str, storage: Storage, default_prompt: str, limit: int | None = None) -> list[VideoInput]:
    """The videos of a run, in input order (the first ``limit`` of them)."""
    if uri.lower().endswith(MANIFEST_SUFFIXES):
        videos = []
        for number, row in enumerate(manifest_rows(uri, storage), 1):
            if not isinstance(row, dict) or not isinstance(row.get("video"), str) or not row["video"].strip():
                raise InputError(f"{uri}: row {number} has no 'video' (a path or URI); got {row!r}")
            video = _absolute(row["video"].strip(), uri)
            video_id = str(row.get("id") or _stem(video))
            videos.append(VideoInput(video_id=video_id, video=video, prompt=row.get("prompt") or default_prompt))
    else:
        videos = [VideoInput(video_id=_stem(video), video=video, prompt=default_prompt) for video in storage.list(uri, VIDEO_SUFFIXES)]
    if not videos:
        raise InputError(f"no videos in {uri} (a manifest with a 'video' column, or a folder of {', '.join(VIDEO_SUFFIXES)} files)")
    seen: dict[str, str] = {}
    for video in videos:
        if video.video_id in seen:
            raise InputError(
                f"{uri}: video id {video.video_id!r} is used by {seen[video.video_id]} and {video.video}; "
                "ids must be unique (give the manifest an 'id' column)"
            )
        seen[video.video_id] = video.video
    return videos[:limit] if limit else videos
