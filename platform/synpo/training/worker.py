"""What each Ray Train worker runs: build the model, shard the pairs, resume, train, checkpoint.

Data: every worker reads the pair rows (text, small) and takes an equal, per-epoch shuffled shard
(``rows[rank::world]``, cut to whole optimizer steps so all ranks step in lockstep); videos are read
lazily from storage batch by batch. Checkpoints (at epoch ends and every
``run.checkpoint_every_steps``) hold the trainable weights, optimizer and schedule (DeepSpeed writes
one shard per rank), ``trainer_state.json`` and the LoRA adapter, reported with ``ray.train.report``.
A restarted or rerun worker group resumes from the latest one, mid-epoch included.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypedDict

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from synpo.models import resolve_model
from synpo.storage import Storage, StorageConfig
from synpo.training.backend import TorchBackend, make_optimizer
from synpo.training.collate import PairCollator
from synpo.training.config import TrainConfig
from synpo.training.data import PairDataset, load_splits
from synpo.training.model import add_lora, is_video_model, load_base, trainable_parameters
from synpo.training.trainer import PreferenceTrainer, TrainResult

STATE_FILE = "trainer_state.json"
ADAPTER_DIR = "adapter"


def epoch_shard(rows: list[dict], epoch: int, seed: int, rank: int, world: int, rows_per_step: int) -> list[dict]:
    """This rank's rows for ``epoch``: a seeded shuffle, every ``world``-th row, cut to whole steps."""
    order = list(rows)
    random.Random(seed * 1000 + epoch).shuffle(order)
    steps = len(order) // world // rows_per_step
    return order[rank::world][: steps * rows_per_step]


def steps_per_epoch(num_rows: int, world: int, rows_per_step: int) -> int:
    return num_rows // world // rows_per_step


def make_reducer(device: torch.device):
    """Weighted mean of metric dicts over all workers (identity without torch.distributed)."""

    def reduce(metrics: dict[str, float], weight: float) -> dict[str, float]:
        if not dist.is_initialized() or dist.get_world_size() == 1:
            return metrics
        keys = sorted(metrics)
        values = torch.tensor([metrics[key] * weight for key in keys] + [weight], dtype=torch.float64, device=device)
        dist.all_reduce(values)
        return {key: float(values[index] / values[-1]) for index, key in enumerate(keys)}

    return reduce


class MlflowStepLogger:
    """Rank 0: every metrics row to the MLflow run (with its step) and a line on stdout."""

    def __init__(self, tracking_uri: str | None, run_id: str | None, world: int) -> None:
        self.client = None
        if tracking_uri and run_id:
            from mlflow import MlflowClient

            self.client = MlflowClient(tracking_uri)
        self.run_id, self.world = run_id, world

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        row = dict(metrics)
        if "pairs_per_s" in row:
            row["pairs_per_s_all_workers"] = row["pairs_per_s"] * self.world
        if self.client is not None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self.client.log_batch(self.run_id, metrics=[Metric(key, float(value), now, step) for key, value in row.items()])
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


def train_loop_per_worker(loop_config: WorkerLoopConfig) -> None:
    """Ray Train entry point: the validated config with its storage section (secret included) put back."""
    import ray.train
    import ray.train.torch

    config = TrainConfig.model_validate({**loop_config["config"], "storage": loop_config["storage"]})
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device() if config.scaling.use_gpu else torch.device("cpu")
    torch.manual_seed(config.seed)  # identical LoRA initialisation on every rank
    storage = Storage(config.storage)
    model_dir = resolve_model(config.model, storage)  # this node's copy (cached: fetched or built once per node)
    base, processor = load_base(str(model_dir))
    model = add_lora(base, config.lora).to(device)
    train_rows, val_rows = load_splits(config.pairs, config.val_pairs, config.val_fraction, config.seed, storage)
    video = config.video if is_video_model(str(model_dir)) else None
    collate = PairCollator(processor, config.max_response_tokens)
    micro, accumulation = config.optim.micro_batch_size, config.accumulation_steps
    rows_per_step = micro * accumulation
    epoch_steps = steps_per_epoch(len(train_rows), world, rows_per_step)
    total_steps = min(config.optim.epochs * epoch_steps, config.optim.max_steps or 10**12)
    named = trainable_parameters(model)
    parameters = [parameter for _, parameter in named]
    if config.deepspeed.enabled:
        from synpo.training.deepspeed_backend import DeepSpeedBackend

        optimizer, scheduler = make_optimizer(parameters, config.optim, total_steps)
        backend = DeepSpeedBackend(model, optimizer, scheduler, config, world, use_bf16=device.type == "cuda")
        train_model = backend.engine
    else:
        backend = TorchBackend(parameters, config.optim, total_steps, named_trainable=named)
        train_model = model

    resume, start_epoch, steps_done = None, 0, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = json.loads((Path(folder) / STATE_FILE).read_text())
            backend.load(Path(folder))
        resume = TrainResult(**state["result"])
        start_epoch, steps_done = state["epoch"], state["steps_in_epoch"]
        print(f"rank {rank}: resuming at epoch {start_epoch}, step {resume.steps} ({steps_done} into the epoch)", flush=True)

    def train_batches(epoch: int):
        rows = epoch_shard(train_rows, epoch, config.seed, rank, world, rows_per_step)
        if epoch == start_epoch:
            rows = rows[steps_done * rows_per_step :]
        return DataLoader(PairDataset(rows, video, storage), batch_size=micro, shuffle=False, collate_fn=collate)

    val_shard = val_rows[: len(val_rows) // world * world][rank::world]

    def val_batches():
        return DataLoader(PairDataset(val_shard, video, storage), batch_size=micro, shuffle=False, collate_fn=collate)

    def save_checkpoint(result: TrainResult, epoch: int, steps_in_epoch: int, metrics: dict[str, float]) -> None:
        with tempfile.TemporaryDirectory(prefix="synpo-ckpt-") as folder:
            path = Path(folder)
            backend.save(path)
            save_adapter(model, path / ADAPTER_DIR, rank, config.deepspeed.zero_stage if config.deepspeed.enabled else 0)
            if rank == 0:
                state = {"epoch": epoch, "steps_in_epoch": steps_in_epoch, "result": asdict(result)}
                (path / STATE_FILE).write_text(json.dumps(state))
            report = {"step": result.steps, "epoch": float(epoch), **{key: value for key, value in metrics.items() if key.startswith("val/")}}
            ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(folder))

    if config.deepspeed.enabled and config.deepspeed.zero_stage == 3 and config.diagnostics.grad_norm_every_steps:
        print("ZeRO-3 partitions the parameters: the chosen/rejected gradient split is not computed", flush=True)
        config.diagnostics.grad_norm_every_steps = 0
    trainer = PreferenceTrainer(
        config,
        train_model,
        backend,
        train_batches,
        val_batches if val_shard else None,
        accumulation_steps=accumulation,
        total_steps=total_steps,
        device=device,
        log=MlflowStepLogger(config.mlflow.tracking_uri, loop_config["mlflow_run_id"], world) if rank == 0 else (lambda metrics, step: None),
        reduce=make_reducer(device),
        checkpoint=save_checkpoint,
        isolate_gradient_split=config.deepspeed.enabled,
    )
    trainer.fit(start_epoch=start_epoch, resume=resume, steps_done_in_start_epoch=steps_done)
