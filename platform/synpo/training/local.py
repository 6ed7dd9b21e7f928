"""Run the training loop in this process (CPU or one GPU): the local/embedded path of ``jobs/train.py``."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from synpo.config.loader import ConfigError
from synpo.sampling.hf_engine import pick_device
from synpo.storage import Storage
from synpo.training.backend import TorchBackend
from synpo.training.collate import PairCollator
from synpo.training.config import TrainConfig
from synpo.training.data import PairDataset, load_splits
from synpo.training.model import add_lora, is_video_model, load_base, trainable_parameters
from synpo.training.plots import plot_training_curves
from synpo.training.trainer import PreferenceTrainer, TrainResult, save_peft_adapter


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


TOY_WARM_START_STEPS = 300


def ensure_model(config: TrainConfig) -> None:
    if Path(config.model, "config.json").is_file():
        return
    if not config.build_toy_model:
        raise ConfigError(f"model = {config.model!r}: no model folder there (set build_toy_model=true to build the tiny toy VLM)")
    from synpo.toy.model import build_tiny_model

    build_tiny_model(config.model, kind="vlm", warm_start_steps=TOY_WARM_START_STEPS)


class JsonlLogger:
    """Appends every metrics row to ``metrics.jsonl`` and prints a one-line summary."""

    def __init__(self, path: Path, total_steps: int) -> None:
        self.path, self.total_steps = path, total_steps
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
        shown = {key: metrics[key] for key in ("loss", "rewards/margin", "rewards/accuracy", "val/loss", "val/accuracy") if key in metrics}
        print(f"step {step}/{self.total_steps} " + " ".join(f"{key}={value:.4f}" for key, value in shown.items()), flush=True)


def run_local(config: TrainConfig) -> TrainResult:
    """Train on this machine; writes metrics.jsonl, training_curves.png, config.yaml and best_adapter/ to output_dir."""
    storage = Storage(config.storage)
    train_rows, val_rows = load_splits(config.pairs, config.val_pairs, config.val_fraction, config.seed, storage)
    if len(train_rows) < config.optim.micro_batch_size:
        raise ConfigError(f"optim.micro_batch_size = {config.optim.micro_batch_size}: only {len(train_rows)} training pairs")
    ensure_model(config)
    seed_everything(config.seed)
    device = pick_device(config.device)
    base, processor = load_base(config.model)
    model = add_lora(base, config.lora).to(device)
    video = config.video if is_video_model(config.model) else None
    collate = PairCollator(processor, config.max_response_tokens)
    micro = config.optim.micro_batch_size
    accumulation = config.optim.effective_batch_size // micro
    steps_per_epoch = math.ceil(len(train_rows) / (micro * accumulation))
    total_steps = min(config.optim.epochs * steps_per_epoch, config.optim.max_steps or 10**12)

    train_set = PairDataset(train_rows, video, storage)
    val_set = PairDataset(val_rows, video, storage) if val_rows else None

    def train_batches(epoch: int):
        order = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        return DataLoader(train_set, batch_size=micro, shuffle=True, generator=order, collate_fn=collate)

    def val_batches():
        return DataLoader(val_set, batch_size=micro, shuffle=False, collate_fn=collate)

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    parameters = [parameter for _, parameter in trainable_parameters(model)]
    trainer = PreferenceTrainer(
        config,
        model,
        TorchBackend(parameters, config.optim, total_steps),
        train_batches,
        val_batches if val_set is not None else None,
        accumulation_steps=accumulation,
        total_steps=total_steps,
        device=device,
        log=JsonlLogger(out / "metrics.jsonl", total_steps),
    )
    result = trainer.fit(save_adapter=lambda epoch: save_peft_adapter(model, out / "best_adapter"))
    plot_training_curves(result.history, out / "training_curves.png", f"{config.objective} on {Path(config.pairs).name}")
    summary = {"steps": result.steps, "best_epoch": result.best_epoch, "best_metric": config.best_metric, "best_value": result.best_value}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return result
