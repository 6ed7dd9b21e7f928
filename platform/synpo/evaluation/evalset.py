"""An eval set: videos with one or more reference captions, read from a manifest.

A manifest row is a video (see :mod:`synpo.video.manifest`: ``video``, optional ``id`` and ``prompt``)
plus its references, under one of these columns:

    references   a list of captions (MSR-VTT / VATEX-style sets carry several per video)
    caption      one caption (the toy world's manifests: the ground-truth caption)

Every video needs at least one non-empty reference; a set without any video is an error. The
fingerprint (a hash of the ids, videos and references, in order) names the set in MLflow, so the
same model is never evaluated twice on the same set.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from synpo.storage import Storage
from synpo.video.manifest import MANIFEST_SUFFIXES, InputError, manifest_rows, read_inputs


@dataclass(frozen=True)
class EvalVideo:
    video_id: str
    video: str  # absolute path or URI
    prompt: str
    references: tuple[str, ...]


def _references(row: dict, number: int, uri: str) -> tuple[str, ...]:
    value = row.get("references", row.get("caption"))
    if isinstance(value, str):
        value = [value]
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        value = []
    references = tuple(text.strip() for text in value if isinstance(text, str) and text.strip())
    if not references:
        raise InputError(f"{uri}: row {number} ({row.get('id') or row.get('video')!r}) has no reference caption ('references': [...] or 'caption')")
    return references


def read_eval_set(uri: str, storage: Storage, default_prompt: str) -> list[EvalVideo]:
    """The eval set in manifest order; every video with its references."""
    if not uri.lower().endswith(MANIFEST_SUFFIXES):
        raise InputError(f"eval_set = {uri!r}: give a manifest ({', '.join(MANIFEST_SUFFIXES)}) with reference captions, not a folder of videos")
    videos = read_inputs(uri, storage, default_prompt)
    rows = manifest_rows(uri, storage)
    return [
        EvalVideo(video.video_id, video.video, video.prompt, _references(row, number, uri))
        for number, (video, row) in enumerate(zip(videos, rows, strict=True), 1)
    ]


def fingerprint(videos: list[EvalVideo]) -> str:
    """12 hex digits naming the set's content (ids, videos, prompts, references, in order)."""
    content = json.dumps([[video.video_id, video.video, video.prompt, list(video.references)] for video in videos])
    return hashlib.sha256(content.encode()).hexdigest()[:12]
