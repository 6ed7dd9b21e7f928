"""Stage 3, async judge actors: score every video's candidates on the three criteria and select its pair.

The stage is I/O-bound, so it runs in its own pool of async actors: the engine actors hand their
batch over and go on sampling while the judge waits on HTTP. Within an actor many videos are
judged concurrently under one client's bounds (concurrency, requests/s, tokens/min). Answers go
to the judge cache under ``<output>/judge_cache`` (flushed after every batch and every
``judge_cache_flush_s`` seconds), so a rerun that samples the same candidates pays nothing twice. Judge failures never raise: they are recorded in
the judgement, and the writer turns a video with fewer than two judged candidates into a failure.
"""

from __future__ import annotations

import json
import time

import pyarrow as pa

from synpo.judging.cache import JudgementCache
from synpo.judging.judge import Judge
from synpo.judging.results import JudgeInput
from synpo.pairgen.config import PairsConfig
from synpo.pairgen.rows import JUDGED, to_table
from synpo.storage import Storage, join_uri


def judge_cache_uri(output: str) -> str:
    return join_uri(output, "judge_cache")


def judge_input(row: dict) -> JudgeInput:
    return JudgeInput(
        video_id=row["video_id"],
        prompt=row["prompt"],
        candidates=[candidate["text"] for candidate in json.loads(row["candidates"])],
        clip_captions=json.loads(row["clip_captions"]),
    )


class JudgeStage:
    """``Table[SAMPLED] -> Table[JUDGED]`` (async; one :class:`~synpo.judging.judge.Judge` per actor)."""

    def __init__(self, config: PairsConfig) -> None:
        # the judge flushes its cache every judge_cache_flush_s while it works, so a job killed mid-video loses at most that much
        cache = JudgementCache(judge_cache_uri(config.output), Storage(config.storage), flush_every_s=config.judge_cache_flush_s)
        self.judge = Judge(config.judge, cache)

    async def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        ready = [row for row in rows if row["failure_stage"] is None]
        start, started_at = time.perf_counter(), time.time()
        verdicts = await self.judge.judge_videos([judge_input(row) for row in ready])
        self.judge.cache.flush()
        times = {"judge_s": (time.perf_counter() - start) / max(1, len(ready)), "judge_start_t": started_at, "judge_end_t": time.time()}
        judged = {row["video_id"]: {**row, "judgement": json.dumps(verdict.to_dict()), **times} for row, verdict in zip(ready, verdicts, strict=True)}
        return to_table([judged.get(row["video_id"], row) for row in rows], JUDGED)
