"""The pair-generation driver: check, resume, build one streaming Ray Data plan, summarise.

    input rows ── decode (CPU tasks) ── sample (engine actor pool) ── judge (async actor pool) ── write (tasks)

Before Ray starts: the config is complete, the input lists unique videos, the output's recorded
settings match (:mod:`synpo.pairgen.progress`), orphaned parts of a dead run are deleted and the
videos already finished are dropped from the plan. The engine and judge pools autoscale between
their ``min_actors`` and ``max_actors``; Ray restarts a crashed actor and retries its batch, and the
writer's deterministic part names make a retried write replace, never duplicate, its rows.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tqdm import tqdm

from synpo.console import console_stream
from synpo.judging.failures import JudgeUnavailable, check_failure_rate
from synpo.models import resolve_model
from synpo.pairgen.config import PairsConfig, PoolSettings
from synpo.pairgen.decode_stage import DecodeStage
from synpo.pairgen.judge_stage import JudgeStage, JudgeStageSettings
from synpo.pairgen.progress import (
    check_fingerprint,
    completed,
    fingerprint,
    release_judge_retries,
    remove_orphans,
)
from synpo.pairgen.sample_stage import SampleStage, SampleStageSettings
from synpo.pairgen.summary import RunSummary, log_to_mlflow
from synpo.pairgen.write_stage import WriteStage
from synpo.storage import Storage
from synpo.video.manifest import read_inputs

logger = logging.getLogger(__name__)
MAX_INPUT_BLOCKS = 2000  # decode tasks start as soon as the plan runs, a block of input rows each
# One video being decoded: the download, PyAV's buffers, one full-size frame (4K RGB ≈ 25 MB) and the
# sampled frames (32 × 448² × 3 ≈ 19 MB). Ray counts it against the node's memory when it places the task.
DECODE_MEMORY_BYTES = 512 * 1024**2


def actor_pool_options(settings: PoolSettings) -> dict:
    """``map_batches`` keyword arguments for an autoscaling actor pool (also used by the evaluation job)."""
    import ray.data

    spread = {"scheduling_strategy": "SPREAD"} if settings.spread else {}
    return {
        "compute": ray.data.ActorPoolStrategy(min_size=settings.min_actors, max_size=settings.max_actors),
        "num_cpus": settings.num_cpus,
        "num_gpus": settings.num_gpus,
        **({"resources": settings.resources} if settings.resources else {}),
        "batch_size": settings.batch_size,
        "batch_format": "pyarrow",
        "max_restarts": settings.max_restarts,  # a batch is retried on the restarted actor (Ray Data's max_task_retries=-1)
        **({"runtime_env": {"py_executable": settings.python}} if settings.python else {}),
        **spread,
    }


def decode_task_options(num_cpus: float) -> dict:
    """``map_batches`` keyword arguments for the decode stage: CPU tasks, never fused into the engine actors.

    Ray Data fuses a task map into the actor map after it whenever their remote args agree (equal
    ``num_cpus`` on a CPU-only pool, say): the plan then runs ``MapBatches(DecodeStage)->MapBatches(SampleStage)``
    and every video is decoded inside an engine actor, on a GPU node's time. Decode tasks also reserve
    :data:`DECODE_MEMORY_BYTES`, which no actor pool asks for, so their remote args never agree and
    the decoding stays in tasks of its own that Ray places on any node with CPUs free.
    """
    return {"batch_size": 1, "batch_format": "pyarrow", "num_cpus": num_cpus, "memory": DECODE_MEMORY_BYTES}


def build_plan(config: PairsConfig, videos: list[dict], storage: Storage):
    """The Ray Data plan for ``videos`` (input rows); yields :data:`~synpo.pairgen.rows.WRITTEN` rows when consumed."""
    import ray.data

    dataset = ray.data.from_items(videos, override_num_blocks=min(len(videos), MAX_INPUT_BLOCKS))
    dataset = dataset.map_batches(DecodeStage(config.video, storage), **decode_task_options(config.decode_num_cpus))
    sample = SampleStageSettings(engine=config.engine, clips=config.clips, candidates=config.candidates, seed=config.seed, storage=config.storage)
    judge = JudgeStageSettings(judge=config.judge, output=config.output, storage=config.storage, cache_flush_s=config.judge_cache_flush_s)
    dataset = dataset.map_batches(SampleStage, fn_constructor_kwargs={"settings": sample}, **actor_pool_options(config.engine_pool))
    dataset = dataset.map_batches(JudgeStage, fn_constructor_kwargs={"settings": judge}, **actor_pool_options(config.judge_pool))
    return dataset.map_batches(
        WriteStage(config.output, storage), batch_size=config.write_batch_size, batch_format="pyarrow", num_cpus=0.1
    )


def prepare_model(config: PairsConfig) -> None:
    """Resolve ``engine.model`` once on the driver (fail before Ray starts; a local engine actor then finds it cached)."""
    resolve_model(config.engine.model, Storage(config.storage), field="engine.model")


def run_pairs(config: PairsConfig, progress: bool = True) -> RunSummary:
    """Run (or resume) pair generation into ``config.output``; returns the run's summary."""
    config.require_paths()
    config = config.with_absolute_paths()
    start = time.perf_counter()
    storage = Storage(config.storage)
    storage.check_writable(config.output, "output", folder=True)
    videos = read_inputs(config.input, storage, config.prompt, config.limit)
    check_fingerprint(config, storage)
    retried = release_judge_retries(config.output, storage)
    orphans = remove_orphans(config.output, storage)
    done = completed(config.output, storage)
    todo = [video.to_dict() for video in videos if video.video_id not in done]
    summary = RunSummary(output=config.output, videos_in=len(videos), already_done=len(videos) - len(todo), orphans_removed=len(orphans))
    logger.info(
        "%d videos: %d already done, %d to do (%d whose judging failed last time); %d orphaned parts removed",
        len(videos), summary.already_done, len(todo), len(retried), len(orphans),
    )  # fmt: skip
    stopped: JudgeUnavailable | None = None
    if todo:
        prepare_model(config)
        config.ray.init()
        stopped = _generate(config, todo, storage, summary, progress)
    summary.finish(completed(config.output, storage), time.perf_counter() - start)
    summary.save(storage)
    if config.mlflow.enabled:
        params = {key: str(value)[:6000] for key, value in _flat(fingerprint(config)).items()}
        run_name = config.mlflow.run_name or f"pairs-{Path(config.output.rstrip('/')).name}"
        log_to_mlflow(summary, {**params, "input": config.input, "output": config.output}, config.mlflow, run_name)
    if stopped is not None:  # after the summary: what was written is recorded, and the rerun resumes it
        raise stopped
    return summary


def _generate(config: PairsConfig, todo: list[dict], storage: Storage, summary: RunSummary, progress: bool) -> JudgeUnavailable | None:
    """Stream ``todo`` through the plan into ``summary``; stops early, returning the error, once the judge is failing."""
    first_judge_error: str | None = None
    try:
        with tqdm(total=len(todo), desc="videos", unit="video", disable=not progress, file=console_stream()) as bar:
            for batch in build_plan(config, todo, storage).iter_batches(batch_format="pyarrow", batch_size=None):
                for row in batch.to_pylist():
                    summary.add(row)
                    if first_judge_error is None and row["judge_retry"]:
                        first_judge_error = row["failure_reason"]
                bar.update(batch.num_rows)
                check_failure_rate(config.judge, summary.judge_calls, summary.judge_failed_calls, first_judge_error, final=False)
        check_failure_rate(config.judge, summary.judge_calls, summary.judge_failed_calls, first_judge_error, final=True)
    except JudgeUnavailable as error:
        return error
    return None


def _flat(value: dict, prefix: str = "") -> dict:
    out = {}
    for key, inner in value.items():
        if isinstance(inner, dict):
            out.update(_flat(inner, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = inner
    return out
