"""The driver of the training job: validate, start MLflow and Ray, run TorchTrainer, register the model.

    ray job submit --working-dir . -- python jobs/train.py --config jobs/configs/train.yaml key=value

Everything that can be checked before Ray starts is: the config (pydantic), the pairs (readable,
schema-valid, enough for one optimizer step per worker) and the model folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import pyarrow.fs as pafs
import yaml

from synpo.config.loader import ConfigError
from synpo.models import resolve_model
from synpo.sampling.prompts import CAPTION_PROMPT
from synpo.storage import Storage, join_uri, parse_uri
from synpo.training.batches import steps_per_epoch
from synpo.training.checkpoints import ADAPTER_DIR, SCORE, STATE_FILE, UNVALIDATED, fetch, remove_orphans
from synpo.training.config import TrainConfig
from synpo.training.data import load_splits
from synpo.training.plots import plot_training_curves
from synpo.training.run_record import RESULT_FILE, check_and_record, pairs_digest, run_folder
from synpo.training.step import NonFiniteLossError
from synpo.training.worker import (
    WorkerLoopConfig,
    stop_marker,
    train_loop_per_worker,
)

RUN_NAME_TAG = "synpo.run_name"


@dataclass
class JobResult:
    mlflow_run_id: str
    steps: int
    best_epoch: int | None
    best_value: float | None
    model_version: str | None
    checkpoint_path: str | None
    best_adapter: str | None
    finished_before: bool = False  # this exact run had finished: nothing was trained or registered now


@dataclass(frozen=True)
class Validated:
    base_model: Path  # the driver's local copy of the base model
    pairs_digest: str  # of the training and validation pairs' content (see run_record)


def _flatten(prefix: str, value, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, inner, out)
    else:
        out[prefix] = str(value)[:6000]


def validate_before_ray(config: TrainConfig) -> Validated:
    """Fail fast on what would otherwise fail inside the workers."""
    if not config.pairs:
        raise ConfigError("pairs: required — give the preference pairs, e.g. pairs=runs/demo/generated/pairs")
    Storage(config.storage).check_writable(config.run.storage_path, "run.storage_path", folder=True)
    train_rows, val_rows = load_splits(config.pairs, config.val_pairs, config.val_fraction, config.seed, Storage(config.storage))
    if not train_rows and not val_rows:
        raise ConfigError(f"pairs = {config.pairs!r}: 0 pairs there (a pair-generation output's summary.json says why its videos were not paired)")
    rows_per_step = config.optim.micro_batch_size * config.accumulation_steps
    if steps_per_epoch(len(train_rows), config.scaling.num_workers, rows_per_step) < 1:
        raise ConfigError(
            f"pairs = {config.pairs!r}: {len(train_rows)} training pairs are fewer than one optimizer step needs "
            f"(effective_batch_size {config.optim.effective_batch_size}); lower optim.effective_batch_size"
        )
    base_model = resolve_model(config.model, Storage(config.storage), field="model")  # fetched or built once here: workers on this node find it cached
    return Validated(base_model, pairs_digest(train_rows + val_rows))


def _mlflow_run(config: TrainConfig) -> str:
    """The MLflow run for ``run.name``: the latest one with that name (a rerun continues it), or a new one."""
    mlflow.set_tracking_uri(config.mlflow.tracking_uri)
    experiment_id = config.mlflow.experiment_id()
    previous = mlflow.search_runs(
        [experiment_id], filter_string=f"tags.`{RUN_NAME_TAG}` = '{config.run.name}'",
        order_by=["attributes.start_time DESC"], output_format="list", max_results=1,
    )
    if previous:
        mlflow.MlflowClient().update_run(previous[0].info.run_id, status="RUNNING")
        return previous[0].info.run_id
    run = mlflow.MlflowClient().create_run(experiment_id, run_name=config.mlflow.run_name or config.run.name, tags={RUN_NAME_TAG: config.run.name})
    return run.info.run_id


def _log_config(run_id: str, config: TrainConfig) -> None:
    """Params (the flattened config; storage credentials never) and config.yaml. MLflow params are
    immutable, so a rerun that changed settings keeps the first values and records the changes as tags."""
    params: dict[str, str] = {}
    _flatten("", config.model_dump(mode="json", exclude={"storage"}), params)
    logged = mlflow.MlflowClient().get_run(run_id).data.params
    changed = sorted(key for key, value in params.items() if key in logged and logged[key] != value)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params({key: value for key, value in params.items() if key not in logged})
        text = yaml.safe_dump(config.model_dump(mode="json", exclude={"storage"}), sort_keys=False)
        mlflow.log_text(text, "config.yaml" if not logged else f"config-rerun-{len(mlflow.MlflowClient().list_artifacts(run_id))}.yaml")
        if changed:
            mlflow.set_tag("synpo.changed_on_rerun", ", ".join(f"{key}={params[key]}" for key in changed)[:5000])


def _ray_storage(config: TrainConfig) -> tuple[str, object | None]:
    location = parse_uri(config.run.storage_path)
    if location.scheme == "file":
        Path(location.path).mkdir(parents=True, exist_ok=True)
        return location.path, None
    filesystem, path = Storage(config.storage).arrow_filesystem(config.run.storage_path)
    return path, filesystem


def run_training(config: TrainConfig) -> JobResult:
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    config = config.with_absolute_paths()
    validated = validate_before_ray(config)
    earlier = check_and_record(config, validated.pairs_digest, Storage(config.storage))
    if earlier is not None:
        return JobResult(**{**earlier, "finished_before": True})
    run_id = _mlflow_run(config)
    _log_config(run_id, config)
    config.ray.init()
    # Ray Train re-logs every print of a worker through its logger, so each line arrived twice; it hands this
    # setting from the driver to its controller and workers, on a cluster too.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    storage_path, storage_filesystem = _ray_storage(config)
    trainer = TorchTrainer(
        train_loop_per_worker,
        # The S3 secret goes as the StorageConfig object, never as a string: see WorkerLoopConfig.
        train_loop_config=WorkerLoopConfig(
            config=config.model_dump(mode="json", exclude={"storage"}), storage=config.storage, mlflow_run_id=run_id
        ),
        torch_config=TorchConfig(backend="nccl" if config.scaling.use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.scaling.num_workers, use_gpu=config.scaling.use_gpu, resources_per_worker={"CPU": config.scaling.cpus_per_worker, **config.scaling.resources_per_worker}
        ),
        run_config=ray.train.RunConfig(
            name=config.run.name,
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            failure_config=ray.train.FailureConfig(max_failures=config.run.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=config.run.keep_checkpoints, checkpoint_score_attribute=SCORE, checkpoint_score_order="max"
            ),
        ),
    )
    storage = Storage(config.storage)
    if storage.exists(stop_marker(config)):
        storage.delete(stop_marker(config))  # a previous attempt's: this one decides anew
    result = trainer.fit()
    if storage.exists(stop_marker(config)):  # every worker stopped on purpose (not retried): the run fails, nothing is registered
        reason = storage.read_text(stop_marker(config))
        client = mlflow.MlflowClient(config.mlflow.tracking_uri)
        client.set_tag(run_id, "synpo.stopped", reason[:5000])
        client.set_terminated(run_id, "FAILED")
        raise NonFiniteLossError(f"{reason} (MLflow run {run_id}; checkpoints so far under {join_uri(config.run.storage_path, config.run.name)})")
    job = _finish(config, run_id, result, validated)
    if config.run.keep_checkpoints is not None:
        remove_orphans(storage_filesystem or pafs.LocalFileSystem(), f"{storage_path}/{config.run.name}", {checkpoint.path for checkpoint, _ in result.best_checkpoints} | {result.checkpoint.path})
    summary = join_uri(run_folder(config), RESULT_FILE)
    Storage(config.storage).write_text(summary, json.dumps(asdict(job), indent=1))
    return job


def _best_checkpoint(result):
    """The kept checkpoint with the best validation (the earliest among equals, as the trainer's best epoch); None without one."""
    validated = [(checkpoint, metrics) for checkpoint, metrics in result.best_checkpoints if metrics.get(SCORE, UNVALIDATED) > UNVALIDATED]
    if not validated:
        return None
    return max(validated, key=lambda item: (item[1][SCORE], -item[1]["step"]))[0]


def _finish(config: TrainConfig, run_id: str, result, validated: Validated) -> JobResult:
    """On the driver: curves from the latest state, the best epoch's adapter logged and registered."""
    with tempfile.TemporaryDirectory(prefix="synpo-final-") as work:
        # only what is read here: the latest counters and the best checkpoint's adapter, not the optimizer shards
        latest = result.checkpoint
        state_dir = fetch(latest.filesystem, latest.path, Path(work) / "latest", lambda name: name == STATE_FILE)
        state = json.loads((state_dir / STATE_FILE).read_text())["result"]
        best = _best_checkpoint(result) or latest
        best_dir = fetch(best.filesystem, best.path, Path(work) / "best", lambda name: name.startswith(f"{ADAPTER_DIR}/"))
        from synpo.registry.captioner_model import git_commit, log_captioner

        with mlflow.start_run(run_id=run_id):
            png = plot_training_curves(state["history"], Path(work) / "training_curves.png", f"{config.objective} on {config.pairs}")
            mlflow.log_artifact(str(png))
            mlflow.log_dict(state, "trainer_state.json")
            tags = {
                "pairs": config.pairs or "", "pairs_digest": validated.pairs_digest, "objective": config.objective,
                "base_model": config.model, "git_commit": git_commit(), "run_id": run_id,
            }  # fmt: skip
            mlflow.set_tags({f"synpo.{key}": value for key, value in tags.items() if key != "run_id"})
            version = log_captioner(
                str(best_dir / ADAPTER_DIR),
                str(validated.base_model),  # logged with the adapter, or its path recorded
                config.registry.include_base_model,
                config.video.model_dump(),
                CAPTION_PROMPT,
                config.max_response_tokens,
                config.registry.model_name,
                tags,
            )
    mlflow.MlflowClient(config.mlflow.tracking_uri).set_terminated(run_id, "FINISHED")
    return JobResult(
        mlflow_run_id=run_id,
        steps=state["steps"],
        best_epoch=state["best_epoch"],
        best_value=state["best_value"],
        model_version=version.version if version is not None else None,
        checkpoint_path=result.checkpoint.path,
        best_adapter=f"{best.path}/{ADAPTER_DIR}",
    )
