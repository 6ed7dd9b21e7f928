"""Stage 3, async judge actors: score every video's candidates on the three criteria and select its pair.

The stage is I/O-bound, so it runs in its own pool of async actors: the engine actors hand their
batch over and go on sampling while the judge waits on HTTP. Within an actor many videos are
judged concurrently under one client's bounds (concurrency, requests/s, tokens/min). Answers go
to the judge cache under ``<output>/judge_cache`` (flushed after every batch and every
``cache_flush_s`` seconds), so a rerun that samples the same candidates pays nothing twice. Judge failures never raise: they are recorded in
the judgement, and the writer turns a video with fewer than two judged candidates into a failure.
The judgement travels to the writer as a JSON column (:func:`~synpo.pairgen.rows.pack_judgement`).

The stage reads only its :class:`JudgeStageSettings` (the judge, output, storage and cache flush
interval of the job's config), built by :func:`synpo.pairgen.pipeline.build_plan`.
"""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pydantic

from synpo.config.base import StrictModel
from synpo.judging.cache import JudgementCache
from synpo.judging.config import JudgeConfig
from synpo.judging.judge import Judge
from synpo.judging.results import JudgeInput
from synpo.pairgen.rows import JUDGED, pack_judgement, to_table, unpack_candidates
from synpo.storage import Storage, StorageConfig, join_uri


class JudgeStageSettings(StrictModel):
    """What the judge stage reads of the job's config (:class:`~synpo.pairgen.config.PairsConfig`)."""

    judge: JudgeConfig = pydantic.Field(description="the LLM judge (or the offline rules judge)")
    output: str = pydantic.Field(min_length=1, description="the job's output; the judge cache lives under <output>/judge_cache")
    storage: StorageConfig = pydantic.Field(description="object storage of the output (s3://)")
    cache_flush_s: float = pydantic.Field(gt=0, description="also write new judge answers to the cache this often (what a killed job can lose)")


def judge_cache_uri(output: str) -> str:
    return join_uri(output, "judge_cache")


def judge_input(row: dict) -> JudgeInput:
    return JudgeInput(
        video_id=row["video_id"],
        prompt=row["prompt"],
        candidates=[candidate.text for candidate in unpack_candidates(row["candidates"])],
        clip_captions=json.loads(row["clip_captions"]),
    )


class JudgeStage:
    """``Table[SAMPLED] -> Table[JUDGED]`` (async; one :class:`~synpo.judging.judge.Judge` per actor)."""

    def __init__(self, settings: JudgeStageSettings) -> None:
        # the judge flushes its cache every cache_flush_s while it works, so a job killed mid-video loses at most that much
        cache = JudgementCache(judge_cache_uri(settings.output), Storage(settings.storage), flush_every_s=settings.cache_flush_s)
        self.judge = Judge(settings.judge, cache)

    async def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        ready = [row for row in rows if row["failure_stage"] is None]
        start, started_at = time.perf_counter(), time.time()
        verdicts = await self.judge.judge_videos([judge_input(row) for row in ready])
        self.judge.cache.flush()
        times = {"judge_s": (time.perf_counter() - start) / max(1, len(ready)), "judge_start_t": started_at, "judge_end_t": time.time()}
        judged = {row["video_id"]: {**row, "judgement": pack_judgement(verdict), **times} for row, verdict in zip(ready, verdicts, strict=True)}
        return to_table([judged.get(row["video_id"], row) for row in rows], JUDGED)
