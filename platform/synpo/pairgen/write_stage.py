"""Stage 4, tasks: select and write — pairs, the audit table, per-video records, failures — then the batch's marker.

Under ``<output>/``, one Parquet part per written batch in each table::

    pairs/part-<batch>.parquet      the preference pairs (synpo.pairs schema: training reads this folder)
    audit/part-<batch>.parquet      every candidate: text, first pass, C1/C2/C3, total, reasoning, failures, role
    videos/part-<batch>.parquet     every video: status, clip captions, margin, judge calls/tokens/cost, stage times
    failures/part-<batch>.parquet   every failed video: stage and reason
    _progress/<batch>.json          the marker: written LAST, it makes the batch's rows count

Per video, the writer parses the judgement and the candidates (:func:`~synpo.pairgen.rows.unpack_judgement`,
:func:`~synpo.pairgen.rows.unpack_candidates`), decides its status, failure stage and reason once
(:func:`video_outcome`), then builds each table's rows with that table's function: :func:`pairs_rows`,
:func:`audit_rows`, :func:`videos_row`, :func:`failures_rows`, and :func:`summary_row` (the
:data:`~synpo.pairgen.rows.WRITTEN` row the driver counts and the marker records).

A video left without a pair because its judge calls failed (after their retries: the judge was down,
overloaded or answered garbage) is written as failed, and its marker lists it under ``judge_retry``:
the next run takes its rows out again and judges it anew (:func:`synpo.pairgen.progress.release_judge_retries`).

``<batch>`` is a hash of the batch's video ids, so a retried task rewrites the same files instead
of adding new ones. Each write is atomic (synpo.storage); a batch whose marker is missing (the job
died between its files and its marker) is an orphan that the next run deletes before resuming
(:mod:`synpo.pairgen.progress`).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from synpo.judging.results import VideoJudgement
from synpo.pairgen.rows import STAGE_TIMES, WRITTEN, SampledCandidate, unpack_candidates, unpack_judgement
from synpo.pairgen.rows import to_table as rows_table
from synpo.pairs.schema import to_table as pairs_table
from synpo.storage import Storage, join_uri

AUDIT = pa.schema(
    [
        pa.field("video_id", pa.string()),
        pa.field("video", pa.string()),
        pa.field("candidate", pa.int64()),
        pa.field("role", pa.string()),  # "chosen", "rejected" or ""
        pa.field("text", pa.string()),
        pa.field("first_pass", pa.string()),
        pa.field("finish_reason", pa.string()),
        pa.field("generated_tokens", pa.int64()),
        pa.field("c1", pa.int64()),
        pa.field("c2", pa.int64()),
        pa.field("c3", pa.int64()),
        pa.field("total", pa.float64()),
        pa.field("reasoning", pa.string()),  # JSON {criterion: text}
        pa.field("judge_failures", pa.string()),  # JSON {criterion: reason}
        pa.field("judge", pa.string()),
    ]
)
VIDEOS = pa.schema(
    [
        pa.field("video_id", pa.string()),
        pa.field("video", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("status", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("duration_s", pa.float64()),
        pa.field("clip_captions", pa.string()),  # JSON list
        pa.field("margin", pa.float64()),
        pa.field("generator", pa.string()),
        pa.field("judge", pa.string()),
        pa.field("judge_calls", pa.int64()),
        pa.field("judge_cache_hits", pa.int64()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("cost_usd", pa.float64()),
        pa.field("decode_s", pa.float64()),
        pa.field("sample_s", pa.float64()),
        pa.field("judge_s", pa.float64()),
    ]
)
FAILURES = pa.schema(
    [pa.field("video_id", pa.string()), pa.field("video", pa.string()), pa.field("stage", pa.string()), pa.field("reason", pa.string())]
)
TABLES = ("pairs", "audit", "videos", "failures")


def batch_id(video_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(video_ids)).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Outcome:
    """How a video ends, decided once (:func:`video_outcome`) for every table."""

    status: str  # "paired", "filtered" (margin too small) or "failed"
    failure_stage: str | None  # "decode", "sample" or "judge" when failed, else None
    reason: str | None  # failed: why; otherwise the pair's reason ("margin 5.3 >= 4")
    judge_retry: bool  # no pair because judge calls failed: the next run judges it again


def video_outcome(row: dict, judgement: VideoJudgement | None) -> Outcome:
    """A video that failed before the judge keeps its stage and reason; a judged video without a pair failed
    at the judge (the reason names up to three of its calls' failures); otherwise its pair is kept or filtered."""
    if row["failure_stage"] is None and judgement is None:
        raise ValueError(f"video {row['video_id']!r} reached the writer neither judged nor failed")
    if judgement is not None and judgement.pair.chosen_index is None:
        failures = sorted({f"{criterion}: {why}" for c in judgement.candidates for criterion, why in c.failures.items()})
        reason = judgement.pair.reason + (f" — {'; '.join(failures[:3])}" if failures else "")
        return Outcome("failed", "judge", reason, judge_retry=judgement.failed_calls > 0)
    if row["failure_stage"]:
        return Outcome("failed", row["failure_stage"], row["failure_reason"], judge_retry=False)
    return Outcome("paired" if judgement.pair.kept else "filtered", None, judgement.pair.reason, judge_retry=False)


def _judge_label(judgement: VideoJudgement) -> str:
    return f"{judgement.backend}:{judgement.judge_model}@{judgement.prompt_version}"


def pairs_rows(row: dict, outcome: Outcome, judgement: VideoJudgement | None, created_at: str) -> list[dict]:
    """The video's preference pair (synpo.pairs schema), if it was paired."""
    if outcome.status != "paired":
        return []
    pair = judgement.pair
    return [
        {
            "pair_id": row["video_id"],
            "video_id": row["video_id"],
            "video": row["video"],
            "prompt": row["prompt"],
            "chosen": pair.chosen_text,
            "rejected": pair.rejected_text,
            "chosen_score": pair.chosen_score,
            "rejected_score": pair.rejected_score,
            "source": "pipeline",
            "generator": row["generator"],
            "judge": _judge_label(judgement),
            "created_at": created_at,
        }
    ]


def audit_rows(row: dict, judgement: VideoJudgement | None, candidates: list[SampledCandidate]) -> list[dict]:
    """:data:`AUDIT` rows: every candidate of a judged video, its scores beside what sampling recorded of it."""
    if judgement is None:
        return []
    pair = judgement.pair
    return [
        {
            "video_id": row["video_id"],
            "video": row["video"],
            "candidate": judged.index,
            "role": "chosen" if judged.index == pair.chosen_index else "rejected" if judged.index == pair.rejected_index else "",
            "text": judged.text,
            "first_pass": sampled.first_pass,
            "finish_reason": sampled.finish_reason,
            "generated_tokens": sampled.tokens,
            "c1": judged.c1,
            "c2": judged.c2,
            "c3": judged.c3,
            "total": judged.total,
            "reasoning": json.dumps(judged.reasoning),
            "judge_failures": json.dumps(judged.failures),
            "judge": _judge_label(judgement),
        }
        for judged, sampled in zip(judgement.candidates, candidates, strict=True)
    ]


def videos_row(row: dict, outcome: Outcome, judgement: VideoJudgement | None) -> dict:
    """The video's :data:`VIDEOS` row (judge columns zero for a video that never reached the judge)."""
    return {
        **{key: row[key] for key in ("video_id", "video", "prompt", "duration_s", "clip_captions", "generator", "decode_s", "sample_s", "judge_s")},
        "status": outcome.status,
        "reason": outcome.reason,
        "margin": judgement.pair.margin if judgement else None,
        "judge": _judge_label(judgement) if judgement else None,
        "judge_calls": judgement.calls if judgement else 0,
        "judge_cache_hits": judgement.cache_hits if judgement else 0,
        "prompt_tokens": judgement.prompt_tokens if judgement else 0,
        "completion_tokens": judgement.completion_tokens if judgement else 0,
        "cost_usd": judgement.cost_usd if judgement else 0,
    }


def failures_rows(row: dict, outcome: Outcome) -> list[dict]:
    """The video's :data:`FAILURES` row, if it failed."""
    if outcome.status != "failed":
        return []
    return [{"video_id": row["video_id"], "video": row["video"], "stage": outcome.failure_stage, "reason": outcome.reason}]


def summary_row(row: dict, outcome: Outcome, judgement: VideoJudgement | None, candidates: list[SampledCandidate]) -> dict:
    """The video's :data:`~synpo.pairgen.rows.WRITTEN` row: what the driver counts and the marker records."""
    return {
        **{key: row[key] for key in ("video_id", "decode_s", "sample_s", "judge_s")},
        "status": outcome.status,
        "failure_stage": outcome.failure_stage,
        "failure_reason": outcome.reason if outcome.status == "failed" else None,
        "judge_retry": outcome.judge_retry,
        "generated_tokens": sum(candidate.tokens for candidate in candidates),
        "judge_calls": judgement.calls if judgement else 0,
        "judge_failed_calls": judgement.failed_calls if judgement else 0,
        "judge_cache_hits": judgement.cache_hits if judgement else 0,
        "prompt_tokens": judgement.prompt_tokens if judgement else 0,
        "completion_tokens": judgement.completion_tokens if judgement else 0,
        "cost_usd": judgement.cost_usd if judgement else 0,
        **{key: row[key] for key in STAGE_TIMES},
    }


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


class WriteStage:
    """``Table[JUDGED] -> Table[WRITTEN]``: writes the batch's parts, then its marker."""

    def __init__(self, output: str, storage: Storage) -> None:
        self.output = output
        self.storage = storage

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        tables: dict[str, list[dict]] = {name: [] for name in (*TABLES, "summary")}
        for row in rows:
            judgement = unpack_judgement(row["judgement"]) if row["judgement"] else None
            candidates = unpack_candidates(row["candidates"]) if row["candidates"] else []
            outcome = video_outcome(row, judgement)
            tables["pairs"].extend(pairs_rows(row, outcome, judgement, created_at))
            tables["audit"].extend(audit_rows(row, judgement, candidates))
            tables["videos"].append(videos_row(row, outcome, judgement))
            tables["failures"].extend(failures_rows(row, outcome))
            tables["summary"].append(summary_row(row, outcome, judgement, candidates))
        part = batch_id([row["video_id"] for row in rows])
        schemas = {"audit": AUDIT, "videos": VIDEOS, "failures": FAILURES}
        for name in TABLES:
            if tables[name]:
                table = pairs_table(tables[name]) if name == "pairs" else rows_table(tables[name], schemas[name])
                self.storage.write_bytes(join_uri(self.output, name, f"part-{part}.parquet"), _parquet(table))
        marker = {
            "batch": part,
            "written_at": created_at,
            "videos": {row["video_id"]: row["status"] for row in tables["summary"]},
            "judge_retry": [row["video_id"] for row in tables["summary"] if row["judge_retry"]],
        }
        self.storage.write_text(join_uri(self.output, "_progress", f"{part}.json"), json.dumps(marker))
        return rows_table(tables["summary"], WRITTEN)
