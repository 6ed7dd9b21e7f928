"""The rows that flow between the stages of pair generation, as explicit Arrow schemas.

Every stage takes and returns a ``pyarrow.Table`` with one of these schemas, so blocks always agree
on types (a batch of failures has the same columns as a batch of successes). Frames travel as
``.npy`` bytes (:func:`pack_array`); nested values as JSON text: clip captions a list of strings,
candidates a list of :class:`SampledCandidate` (:func:`pack_candidates`), the judgement a
:class:`~synpo.judging.results.VideoJudgement` (:func:`pack_judgement`). Each ``pack_*`` has its
``unpack_*``, and both ends of a column use them, so no stage reads another's JSON by key. A row whose
video failed keeps flowing with ``failure_stage``/``failure_reason`` set, and every later stage
passes it through untouched, so the writer records it.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from synpo.judging.results import VideoJudgement

_BASE = [
    pa.field("video_id", pa.string()),
    pa.field("video", pa.string()),
    pa.field("prompt", pa.string()),
    pa.field("failure_stage", pa.string()),
    pa.field("failure_reason", pa.string()),
    pa.field("decode_s", pa.float64()),
    pa.field("decode_start_t", pa.float64()),  # UNIX times: when each stage started and finished this video
    pa.field("decode_end_t", pa.float64()),
]
INPUT = pa.schema(_BASE[:3])
DECODED = pa.schema(
    [
        *_BASE,
        pa.field("duration_s", pa.float64()),
        pa.field("frames", pa.binary()),  # .npy of [N, H, W, 3] uint8
        pa.field("sparse_frames", pa.binary()),  # .npy of [ceil(N/3), H, W, 3]
        pa.field("clip_frames", pa.binary()),  # .npy of [C, F, H, W, 3]
    ]
)
_SAMPLED_ONLY = [
    pa.field("duration_s", pa.float64()),
    pa.field("candidates", pa.string()),  # JSON list of SampledCandidate dicts (pack_candidates)
    pa.field("clip_captions", pa.string()),  # JSON list of strings, in clip order
    pa.field("generator", pa.string()),
    pa.field("sample_s", pa.float64()),
    pa.field("sample_start_t", pa.float64()),
    pa.field("sample_end_t", pa.float64()),
]
SAMPLED = pa.schema([*_BASE, *_SAMPLED_ONLY])
JUDGED = pa.schema(
    [
        *_BASE,
        *_SAMPLED_ONLY,
        pa.field("judgement", pa.string()),  # JSON VideoJudgement (pack_judgement); null for a failed row
        pa.field("judge_s", pa.float64()),
        pa.field("judge_start_t", pa.float64()),
        pa.field("judge_end_t", pa.float64()),
    ]
)
STAGE_TIMES = [f"{stage}_{edge}_t" for stage in ("decode", "sample", "judge") for edge in ("start", "end")]
WRITTEN = pa.schema(
    [
        pa.field("video_id", pa.string()),
        pa.field("status", pa.string()),  # "paired", "filtered" (margin too small) or "failed"
        pa.field("failure_stage", pa.string()),
        pa.field("failure_reason", pa.string()),
        pa.field("judge_retry", pa.bool_()),  # no pair because judge calls failed: the next run judges it again
        pa.field("decode_s", pa.float64()),
        pa.field("sample_s", pa.float64()),
        pa.field("judge_s", pa.float64()),
        pa.field("generated_tokens", pa.int64()),
        pa.field("judge_calls", pa.int64()),
        pa.field("judge_failed_calls", pa.int64()),
        pa.field("judge_cache_hits", pa.int64()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("cost_usd", pa.float64()),
        *[pa.field(name, pa.float64()) for name in STAGE_TIMES],
    ]
)


def to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """``rows`` as a table of ``schema`` (missing columns become nulls, extra keys are dropped)."""
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)


def failed(row: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    """``row`` marked as failed at ``stage`` (its payload columns cleared)."""
    keep = {name: row.get(name) for name in ("video_id", "video", "prompt", "decode_s", "sample_s", "duration_s", *STAGE_TIMES)}
    return {**keep, "failure_stage": stage, "failure_reason": reason}


def pack_array(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def unpack_array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


@dataclass(frozen=True)
class SampledCandidate:
    """One whole-video candidate as the sample stage recorded it (an element of the ``candidates`` column)."""

    text: str  # the caption the judge scores (after the retrospective pass, if any)
    first_pass: str | None  # the text it was refined from (retrospection only)
    finish_reason: str  # "stop" or "length"
    tokens: int  # tokens generated for ``text``

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampledCandidate:
        return cls(**data)


def pack_candidates(candidates: list[SampledCandidate]) -> str:
    return json.dumps([candidate.to_dict() for candidate in candidates])


def unpack_candidates(text: str) -> list[SampledCandidate]:
    return [SampledCandidate.from_dict(candidate) for candidate in json.loads(text)]


def pack_judgement(judgement: VideoJudgement) -> str:
    return json.dumps(judgement.to_dict())


def unpack_judgement(text: str) -> VideoJudgement:
    return VideoJudgement.from_dict(json.loads(text))
