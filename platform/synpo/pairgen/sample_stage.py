"""Stage 2, engine actors: clip captions and whole-video candidates for a batch of decoded videos.

Per video (METHOD.md §1 steps 1-4):

- one request per clip: greedy caption with the clip prompt, then one greedy refinement
  (``mode="retrospective"``, ``n=1``) — the reference set for the judge's C1;
- one request for the whole video: ``n`` candidates with the configured mode (CD and/or
  retrospection), seeded with :func:`video_seed` so a rerun samples the same candidates (and hits
  the judge cache instead of paying again) on the HF engine. vLLM on GPUs is not batch-invariant
  (a video's samples can depend on its batch), so there a resampled video may differ; resuming
  rests on what was written (the write stage's markers), never on this.

All requests of a batch go to the engine in one ``generate`` call (vLLM batches them). If that call
fails with an engine error (``RuntimeError`` such as CUDA OOM, or ``ValueError`` for an input the
model cannot take: :class:`~synpo.sampling.request.RequestRejected`), each video is retried alone and
only the one that fails becomes a failure row. A dead engine (:class:`~synpo.sampling.request.EngineDead`)
ends the actor instead (:func:`engine_died`): Ray restarts it and retries the batch.

The stage reads only its :class:`SampleStageSettings` (the engine, clip and candidate settings and
the seed of the job's config), built by :func:`synpo.pairgen.pipeline.build_plan`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import NoReturn

import pyarrow as pa
import pydantic

from synpo.config.base import StrictModel
from synpo.pairgen.config import CandidateSettings, ClipSettings
from synpo.pairgen.rows import SAMPLED, SampledCandidate, failed, pack_candidates, to_table, unpack_array
from synpo.sampling.engine import EngineSettings, build_engine
from synpo.sampling.request import CaptionRequest, CaptionResult, EngineDead, SamplingParams
from synpo.storage import Storage, StorageConfig

logger = logging.getLogger(__name__)


class SampleStageSettings(StrictModel):
    """What the sample stage reads of the job's config (:class:`~synpo.pairgen.config.PairsConfig`)."""

    engine: EngineSettings = pydantic.Field(description="caption engine and model (one engine per actor)")
    clips: ClipSettings = pydantic.Field(description="clip captions (the judge's references)")
    candidates: CandidateSettings = pydantic.Field(description="whole-video candidates")
    seed: int = pydantic.Field(description="base seed; each video samples with a seed derived from it and the video id")
    storage: StorageConfig = pydantic.Field(default_factory=StorageConfig, description="object storage (an s3:// engine.model)")


def video_seed(base_seed: int, video_id: str) -> int:
    """A 31-bit seed from the run's seed and the video id (stable across runs, machines and batches)."""
    return int(hashlib.sha256(f"{base_seed}:{video_id}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def video_requests(row: dict, settings: SampleStageSettings) -> list[CaptionRequest]:
    """The clip requests (in clip order) then the candidates request of one decoded row."""
    clip_params = SamplingParams(n=1, temperature=0.0, max_new_tokens=settings.clips.max_new_tokens)
    clip_mode = "retrospective" if settings.clips.refine else "plain"
    clips = unpack_array(row["clip_frames"])
    clip_duration = row["duration_s"] / len(clips) if row["duration_s"] else None  # the clips split the video evenly
    requests = [
        CaptionRequest(
            request_id=f"{row['video_id']}/clip-{index}",
            prompt=settings.clips.prompt,
            frames=clip_frames,
            params=clip_params,
            mode=clip_mode,
            refine_template=settings.candidates.refine_template,
            duration_s=clip_duration,
        )
        for index, clip_frames in enumerate(clips)
    ]
    candidates = settings.candidates
    requests.append(
        CaptionRequest(
            request_id=f"{row['video_id']}/candidates",
            prompt=row["prompt"],
            frames=unpack_array(row["frames"]),
            sparse_frames=unpack_array(row["sparse_frames"]),
            duration_s=row["duration_s"],
            params=candidates.sampling.model_copy(update={"seed": video_seed(settings.seed, row["video_id"])}),
            mode=candidates.mode,
            contrastive=candidates.contrastive,
            refine_template=candidates.refine_template,
        )
    )
    return requests


def sampled_row(row: dict, results: list[CaptionResult], generator: str, seconds: float, span: tuple[float, float]) -> dict:
    """A :data:`~synpo.pairgen.rows.SAMPLED` row from a video's results (clips first, candidates last)."""
    *clips, candidates = results
    return {
        **{key: row[key] for key in ("video_id", "video", "prompt", "decode_s", "duration_s", "decode_start_t", "decode_end_t")},
        "clip_captions": json.dumps([clip.candidates[0].text for clip in clips]),
        "candidates": pack_candidates(
            [
                SampledCandidate(text=c.text, first_pass=c.first_pass, finish_reason=c.finish_reason, tokens=len(c.token_ids))
                for c in candidates.candidates
            ]
        ),
        "generator": generator,
        "sample_s": seconds,
        "sample_start_t": span[0],
        "sample_end_t": span[1],
    }


ENGINE_DEAD_EXIT_CODE = 75  # EX_TEMPFAIL: the actor process ends so that Ray restarts it


def engine_died(error: EngineDead) -> NoReturn:
    """In a Ray actor: end the process. Ray Data's actor pools restart dead actors and retry their task
    (``max_restarts`` / ``max_task_retries`` of the pool), so a fresh engine samples the batch again; a dead
    engine must never turn the batch's videos into failure rows. Outside an actor (tests, one process): raise."""
    import ray

    if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
        logger.error("%s; ending this engine actor so that Ray replaces it and retries the batch", error)
        logging.shutdown()
        os._exit(ENGINE_DEAD_EXIT_CODE)
    raise error


class SampleStage:
    """``Table[DECODED] -> Table[SAMPLED]``; holds one caption engine (built once per actor)."""

    def __init__(self, settings: SampleStageSettings) -> None:
        self.settings = settings
        self.engine = build_engine(settings.engine, Storage(settings.storage))  # this node's copy of the model
        self.generator = Path(settings.engine.model).name + (f"+{Path(settings.engine.adapter).name}" if settings.engine.adapter else "")

    def _sample(self, rows: list[dict]) -> list[dict]:
        start, started_at = time.perf_counter(), time.time()
        per_video = [video_requests(row, self.settings) for row in rows]
        results = iter(self.engine.generate([request for requests in per_video for request in requests]))
        seconds, span = (time.perf_counter() - start) / len(rows), (started_at, time.time())
        return [
            sampled_row(row, [next(results) for _ in requests], self.generator, seconds, span)
            for row, requests in zip(rows, per_video, strict=True)
        ]

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        ready = [row for row in rows if row["failure_stage"] is None]
        out = {row["video_id"]: failed(row, row["failure_stage"], row["failure_reason"]) for row in rows if row["failure_stage"]}
        if ready:
            try:
                out.update({row["video_id"]: row for row in self._sample(ready)})
            except EngineDead as error:
                engine_died(error)
            except (RuntimeError, ValueError) as error:  # isolate the video the engine cannot take; the others still sample
                logger.warning("batch of %d videos failed in the engine (%s); retrying them one at a time", len(ready), error)
                for row in ready:
                    try:
                        out[row["video_id"]] = self._sample([row])[0]
                    except EngineDead as error:
                        engine_died(error)
                    except (RuntimeError, ValueError) as error:  # RequestRejected included: this video fails, alone
                        out[row["video_id"]] = failed(row, "sample", f"{type(error).__name__}: {error}")
        return to_table([out[row["video_id"]] for row in rows], SAMPLED)
