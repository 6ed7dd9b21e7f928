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

from synpo.pairgen.config import PairsConfig, PoolSettings
from synpo.pairgen.decode_stage import DecodeStage
from synpo.pairgen.inputs import read_inputs
from synpo.pairgen.judge_stage import JudgeStage
from synpo.pairgen.progress import check_fingerprint, completed, fingerprint, remove_orphans
from synpo.pairgen.sample_stage import SampleStage
from synpo.pairgen.summary import RunSummary, log_to_mlflow
from synpo.pairgen.write_stage import WriteStage
from synpo.storage import Storage

logger = logging.getLogger(__name__)
TOY_WARM_START_STEPS = 300
MAX_INPUT_BLOCKS = 2000  # decode tasks start as soon as the plan runs, a block of input rows each


def _pool(settings: PoolSettings) -> dict:
    import ray.data

    spread = {"scheduling_strategy": "SPREAD"} if settings.spread else {}
    return {
        "compute": ray.data.ActorPoolStrategy(min_size=settings.min_actors, max_size=settings.max_actors),
        "num_cpus": settings.num_cpus,
        "num_gpus": settings.num_gpus,
        "batch_size": settings.batch_size,
        "batch_format": "pyarrow",
        **spread,
    }


def build_plan(config: PairsConfig, videos: list[dict], storage: Storage):
    """The Ray Data plan for ``videos`` (input rows); yields :data:`~synpo.pairgen.rows.WRITTEN` rows when consumed."""
    import ray.data

    dataset = ray.data.from_items(videos, override_num_blocks=min(len(videos), MAX_INPUT_BLOCKS))
    dataset = dataset.map_batches(
        DecodeStage(config.video, storage), batch_size=1, batch_format="pyarrow", num_cpus=config.decode_num_cpus
    )
    dataset = dataset.map_batches(SampleStage, fn_constructor_kwargs={"config": config}, **_pool(config.engine_pool))
    dataset = dataset.map_batches(JudgeStage, fn_constructor_kwargs={"config": config}, **_pool(config.judge_pool))
    return dataset.map_batches(
        WriteStage(config.output, storage), batch_size=config.write_batch_size, batch_format="pyarrow", num_cpus=0.1
    )


def prepare_model(config: PairsConfig) -> None:
    if Path(config.engine.model, "config.json").is_file() or "://" in config.engine.model:
        return
    if not config.build_toy_model:
        raise FileNotFoundError(f"engine.model = {config.engine.model!r}: no model folder there (build_toy_model=true builds the tiny toy VLM)")
    from synpo.toy.model import build_tiny_model

    build_tiny_model(config.engine.model, kind="vlm", warm_start_steps=TOY_WARM_START_STEPS)


def run_pairs(config: PairsConfig, progress: bool = True) -> RunSummary:
    """Run (or resume) pair generation into ``config.output``; returns the run's summary."""
    import ray

    config.require_paths()
    config = config.with_absolute_paths()
    start = time.perf_counter()
    storage = Storage(config.storage)
    videos = read_inputs(config.input, storage, config.prompt, config.limit)
    check_fingerprint(config, storage)
    orphans = remove_orphans(config.output, storage)
    done = completed(config.output, storage)
    todo = [video.to_dict() for video in videos if video.video_id not in done]
    summary = RunSummary(output=config.output, videos_in=len(videos), already_done=len(videos) - len(todo), orphans_removed=len(orphans))
    logger.info("%d videos: %d already done, %d to do; %d orphaned parts removed", len(videos), summary.already_done, len(todo), len(orphans))
    if todo:
        prepare_model(config)
        if not ray.is_initialized():
            local = {"num_cpus": config.ray.num_cpus, "include_dashboard": False} if config.ray.address is None else {}
            ray.init(address=config.ray.address, **local)
        with tqdm(total=len(todo), desc="videos", unit="video", disable=not progress) as bar:
            for batch in build_plan(config, todo, storage).iter_batches(batch_format="pyarrow", batch_size=None):
                for row in batch.to_pylist():
                    summary.add(row)
                bar.update(batch.num_rows)
    summary.finish(completed(config.output, storage), time.perf_counter() - start)
    summary.save(storage)
    if config.mlflow.enabled:
        params = {key: str(value)[:6000] for key, value in _flat(fingerprint(config)).items()}
        run_name = config.mlflow.run_name or f"pairs-{Path(config.output.rstrip('/')).name}"
        log_to_mlflow(summary, {**params, "input": config.input, "output": config.output}, config.mlflow.tracking_uri, config.mlflow.experiment, run_name)
    return summary


def _flat(value: dict, prefix: str = "") -> dict:
    out = {}
    for key, inner in value.items():
        if isinstance(inner, dict):
            out.update(_flat(inner, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = inner
    return out
