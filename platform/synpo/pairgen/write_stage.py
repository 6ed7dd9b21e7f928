"""Stage 4, tasks: select and write — pairs, the audit table, per-video records, failures — then the batch's marker.

Under ``<output>/``, one Parquet part per written batch in each table::

    pairs/part-<batch>.parquet      the preference pairs (synpo.pairs schema: training reads this folder)
    audit/part-<batch>.parquet      every candidate: text, first pass, C1/C2/C3, total, reasoning, failures, role
    videos/part-<batch>.parquet     every video: status, clip captions, margin, judge calls/tokens/cost, stage times
    failures/part-<batch>.parquet   every failed video: stage and reason
    _progress/<batch>.json          the marker: written LAST, it makes the batch's rows count

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
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from synpo.pairgen.rows import STAGE_TIMES, WRITTEN
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


def _judge_label(verdict: dict) -> str:
    return f"{verdict['backend']}:{verdict['judge_model']}@{verdict['prompt_version']}"


def video_outputs(row: dict, created_at: str) -> dict[str, list[dict]]:
    """One judged (or failed) row -> its rows in each table, plus its summary row."""
    if row["failure_stage"] is None and row.get("judgement") is None:
        raise ValueError(f"video {row['video_id']!r} reached the writer neither judged nor failed")
    stage, reason = row["failure_stage"], row["failure_reason"]
    verdict = json.loads(row["judgement"]) if row.get("judgement") else None
    pair = verdict["pair"] if verdict else None
    if verdict is not None and pair["chosen_index"] is None:
        failures = sorted({f"{criterion}: {why}" for c in verdict["candidates"] for criterion, why in c["failures"].items()})
        stage, reason = "judge", pair["reason"] + (f" — {'; '.join(failures[:3])}" if failures else "")
    status = "failed" if stage else ("paired" if pair["kept"] else "filtered")
    out: dict[str, list[dict]] = {name: [] for name in TABLES}
    judge = _judge_label(verdict) if verdict else None
    if status == "paired":
        out["pairs"].append(
            {
                "pair_id": row["video_id"],
                "video_id": row["video_id"],
                "video": row["video"],
                "prompt": row["prompt"],
                "chosen": pair["chosen_text"],
                "rejected": pair["rejected_text"],
                "chosen_score": pair["chosen_score"],
                "rejected_score": pair["rejected_score"],
                "source": "pipeline",
                "generator": row["generator"],
                "judge": judge,
                "created_at": created_at,
            }
        )
    if verdict is not None:
        sampled = json.loads(row["candidates"])
        for judged, candidate in zip(verdict["candidates"], sampled, strict=True):
            role = "chosen" if judged["index"] == pair["chosen_index"] else "rejected" if judged["index"] == pair["rejected_index"] else ""
            out["audit"].append(
                {
                    "video_id": row["video_id"],
                    "video": row["video"],
                    "candidate": judged["index"],
                    "role": role,
                    "text": judged["text"],
                    "first_pass": candidate["first_pass"],
                    "finish_reason": candidate["finish_reason"],
                    "generated_tokens": candidate["tokens"],
                    **{criterion: judged[criterion] for criterion in ("c1", "c2", "c3", "total")},
                    "reasoning": json.dumps(judged["reasoning"]),
                    "judge_failures": json.dumps(judged["failures"]),
                    "judge": judge,
                }
            )
    if status == "failed":
        out["failures"].append({"video_id": row["video_id"], "video": row["video"], "stage": stage, "reason": reason})
    tally = {key: verdict[key] if verdict else 0 for key in ("calls", "failed_calls", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd")}
    out["videos"].append(
        {
            **{key: row.get(key) for key in ("video_id", "video", "prompt", "duration_s", "clip_captions", "generator", "decode_s", "sample_s", "judge_s")},
            "status": status,
            "reason": reason if status == "failed" else (pair["reason"] if pair else None),
            "margin": pair["margin"] if pair else None,
            "judge": judge,
            "judge_calls": tally["calls"],
            "judge_cache_hits": tally["cache_hits"],
            **{key: tally[key] for key in ("prompt_tokens", "completion_tokens", "cost_usd")},
        }
    )
    generated = sum(candidate["tokens"] for candidate in json.loads(row["candidates"])) if row.get("candidates") else 0
    out["summary"] = [
        {
            **{key: row.get(key) for key in ("video_id", "decode_s", "sample_s", "judge_s")},
            "status": status,
            "failure_stage": stage,
            "failure_reason": reason if status == "failed" else None,
            "judge_retry": verdict is not None and pair["chosen_index"] is None and verdict["failed_calls"] > 0,
            "generated_tokens": generated,
            "judge_calls": tally["calls"],
            "judge_failed_calls": tally["failed_calls"],
            "judge_cache_hits": tally["cache_hits"],
            **{key: tally[key] for key in ("prompt_tokens", "completion_tokens", "cost_usd")},
            **{key: row.get(key) for key in STAGE_TIMES},
        }
    ]
    return out


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
            for name, produced in video_outputs(row, created_at).items():
                tables[name].extend(produced)
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
