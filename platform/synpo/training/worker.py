"""What each Ray Train worker runs: the training recipe (``recipe.py``) on this rank's shard, with
MLflow logging, cross-worker metric means, checkpoints and resumption.

Data: every worker reads the pair rows (text, small) and takes an equal, per-epoch shuffled shard
(:class:`~synpo.training.batches.ShardedBatches`); videos are read lazily from storage batch by batch. Checkpoints (at epoch ends and every
``run.checkpoint_every_steps``) hold the trainable weights, optimizer and schedule (DeepSpeed writes
one shard per rank), ``trainer_state.json`` and the LoRA adapter, reported with ``ray.train.report``.
A restarted or rerun worker group resumes from the latest one, mid-epoch included.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypedDict

import torch

from synpo.models import resolve_model
from synpo.storage import Storage, StorageConfig, join_uri
from synpo.training.backend import Backend
from synpo.training.batches import ShardedBatches
from synpo.training.checkpoints import (
    ADAPTER_DIR,
    SCORE,
    STATE_FILE,
    checkpoint_score,
    fetch,
    needed_to_resume,
)
from synpo.training.collate import PairCollator
from synpo.training.collectives import gather_objects, make_all_true, make_reducer
from synpo.training.config import TrainConfig
from synpo.training.data import load_splits
from synpo.training.memory import startup_report
from synpo.training.model import trainable_parameters
from synpo.training.recipe import build_trainer, load_policy
from synpo.training.step import NonFiniteLossError
from synpo.training.trainer import LoopHooks, TrainResult, no_logging

STOP_FILE = "stopped.txt"  # rank 0 writes the reason here when every worker stopped training on purpose


def stop_marker(config: TrainConfig) -> str:
    return join_uri(config.run.storage_path, config.run.name, STOP_FILE)


class MlflowStepLogger:
    """Rank 0: every metrics row to the MLflow run (with its step) and a line on stdout.

    A tracking hiccup never fails a training step (a raised error would restart the whole worker group
    from its last checkpoint): rows that could not be sent stay queued, with a warning, and go with the
    next row that gets through. MLflow's HTTP retries are kept short here (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``
    and ``MLFLOW_HTTP_REQUEST_TIMEOUT``, unless set) so a server that is down stalls a step by seconds, not minutes.
    """

    MAX_QUEUED = 100_000  # metric values kept while the server is away (the oldest are dropped beyond, with a warning)
    BATCH = 1000  # MLflow's limit of metrics per log_batch

    def __init__(self, tracking_uri: str | None, run_id: str | None, world: int) -> None:
        self.client = None
        if tracking_uri and run_id:
            from mlflow import MlflowClient

            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
            self.client = MlflowClient(tracking_uri)
        self.run_id, self.world = run_id, world
        self.queued: list = []  # mlflow Metric values not yet accepted by the server

    def _send(self, metrics: list) -> None:
        self.queued.extend(metrics)
        if len(self.queued) > self.MAX_QUEUED:
            dropped = len(self.queued) - self.MAX_QUEUED
            print(f"warning: MLflow still unreachable; dropping the {dropped} oldest queued metric values", flush=True)
            del self.queued[:dropped]
        backlog = len(self.queued) > len(metrics)
        try:
            while self.queued:
                self.client.log_batch(self.run_id, metrics=self.queued[: self.BATCH])
                del self.queued[: self.BATCH]
        except Exception as error:  # noqa: BLE001 - any tracking failure (HTTP, server, auth): keep the rows, never fail the step
            print(f"warning: MLflow logging failed ({type(error).__name__}: {str(error)[:200]}); "
                  f"{len(self.queued)} metric values queued for the next step", flush=True)  # fmt: skip
            return
        if backlog:
            print("MLflow logging is back: queued metrics sent", flush=True)

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        row = dict(metrics)
        if "pairs_per_s" in row:
            row["pairs_per_s_all_workers"] = row["pairs_per_s"] * self.world
        if self.client is not None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self._send([Metric(key, float(value), now, step) for key, value in row.items()])
        shown = {key: row[key] for key in ("loss", "rewards/margin", "rewards/accuracy", "val/loss", "val/accuracy") if key in row}
        print(f"step {step} " + " ".join(f"{key}={value:.4f}" for key, value in shown.items()), flush=True)


def save_adapter(model: torch.nn.Module, folder: Path, rank: int, zero_stage: int) -> None:
    """The LoRA adapter (gathered first under ZeRO-3); written by rank 0."""
    parameters = [parameter for _, parameter in trainable_parameters(model)]
    if zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(parameters, modifier_rank=None):
            if rank == 0:
                model.save_pretrained(folder)
    elif rank == 0:
        model.save_pretrained(folder)


class WorkerLoopConfig(TypedDict):
    """What the driver hands every worker as Ray's ``train_loop_config``.

    ``config`` is JSON, but JSON renders ``SecretStr`` as ``**********``, so the storage section
    (with the S3 secret) is left out of it and travels as the :class:`StorageConfig` object itself:
    pickled in memory to the workers, the secret intact. Ray Train also keeps a JSON-ish record of
    ``train_loop_config`` (its run-state actor, which the dashboard serves and the export API writes to
    ``logs/export_events`` when enabled): plain strings go in verbatim, other objects as ``str(obj)``,
    where pydantic masks the secret. So a secret must never travel here as a plain string.
    """

    config: dict[str, Any]  # TrainConfig.model_dump(mode="json", exclude={"storage"})
    storage: StorageConfig
    mlflow_run_id: str | None


@dataclass(frozen=True)
class ResumePoint:
    """Where the latest checkpoint left off: the loop's counters, the epoch and the steps made in it."""

    result: TrainResult
    epoch: int
    steps_in_epoch: int

    @classmethod
    def read(cls, folder: Path) -> ResumePoint:
        state = json.loads((folder / STATE_FILE).read_text())
        return cls(TrainResult(**state["result"]), state["epoch"], state["steps_in_epoch"])


class CheckpointWriter:
    """Every rank: the backend's state (DeepSpeed: one shard per rank) and the adapter; rank 0 adds the
    loop's counters; reported to Ray Train with the latest validation metrics and the score it keeps checkpoints by
    (``synpo.training.checkpoints``)."""

    def __init__(self, policy_model: torch.nn.Module, rank: int, config: TrainConfig) -> None:
        self.policy_model, self.rank, self.config = policy_model, rank, config
        self.zero_stage = config.deepspeed.zero_stage if config.deepspeed.enabled else 0

    def __call__(self, backend: Backend, result: TrainResult, epoch: int, steps_in_epoch: int, metrics: dict[str, float]) -> None:
        import ray.train

        with tempfile.TemporaryDirectory(prefix="synpo-ckpt-") as folder:
            path = Path(folder)
            backend.save(path)
            save_adapter(self.policy_model, path / ADAPTER_DIR, self.rank, self.zero_stage)
            if self.rank == 0:
                state = {"epoch": epoch, "steps_in_epoch": steps_in_epoch, "result": asdict(result)}
                (path / STATE_FILE).write_text(json.dumps(state))
            report = {"step": result.steps, "epoch": float(epoch), **{key: value for key, value in metrics.items() if key.startswith("val/")}}
            report[SCORE] = checkpoint_score(report, self.config.best_metric, self.config.best_is_lower)
            ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(folder))


def train_loop_per_worker(loop_config: WorkerLoopConfig) -> None:
    """Ray Train entry point: the validated config with its storage section (secret included) put back."""
    import ray.train
    import ray.train.torch

    config = TrainConfig.model_validate({**loop_config["config"], "storage": loop_config["storage"]})
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device() if config.scaling.use_gpu else torch.device("cpu")
    storage = Storage(config.storage)
    model_dir = resolve_model(config.model, storage)  # this node's copy (cached: fetched or built once per node)
    policy = load_policy(config, model_dir, device)
    collate = PairCollator(policy.processor, config.max_response_tokens)
    if rank == 0:
        print(startup_report(config, model_dir, collate, policy.is_video, device), flush=True)
    checkpoint = ray.train.get_checkpoint()
    with ExitStack() as stack:  # the checkpoint (from s3://, say) is fetched once, this rank's files only: its state here, its weights below
        folder = None
        if checkpoint is not None:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="synpo-resume-")))
            folder = fetch(checkpoint.filesystem, checkpoint.path, scratch, lambda name: needed_to_resume(name, rank))
        resume = ResumePoint.read(folder) if folder is not None else None
        train_rows, val_rows = load_splits(config.pairs, config.val_pairs, config.val_fraction, config.seed, storage)
        batches = ShardedBatches(
            train_rows, val_rows, config, collate,
            video=config.video if policy.is_video else None, storage=storage, rank=rank, world=world,
            resume_at=(resume.epoch, resume.steps_in_epoch) if resume else (0, 0),
            pin_memory=device.type == "cuda",
        )
        hooks = LoopHooks(
            log=MlflowStepLogger(config.mlflow.tracking_uri, loop_config["mlflow_run_id"], world) if rank == 0 else no_logging,
            reduce=make_reducer(device),
            all_true=make_all_true(device),
            gather=gather_objects,
            checkpoint=CheckpointWriter(policy.model, rank, config),
        )
        trainer = build_trainer(config, policy, batches, device=device, world_size=world, hooks=hooks)
        if resume is not None:
            trainer.backend.load(folder)
    try:
        if resume is None:
            trainer.fit()
            return
        print(f"rank {rank}: resuming at epoch {resume.epoch}, step {resume.result.steps} ({resume.steps_in_epoch} into the epoch)", flush=True)
        trainer.fit(start_epoch=resume.epoch, resume=resume.result, steps_done_in_start_epoch=resume.steps_in_epoch)
    except NonFiniteLossError as error:
        # Raised on every rank alike. A worker error would make Ray Train restart the group from the last checkpoint,
        # replaying the same batches into the same NaN; so every rank returns, and rank 0 leaves the reason for the driver.
        if rank == 0:
            storage.write_text(stop_marker(config), str(error))
