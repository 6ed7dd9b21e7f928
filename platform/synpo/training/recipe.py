"""The one way a preference trainer is put together — by each Ray Train worker, the toy warm start,
the benchmarks and the tests alike:

    policy  = load_policy(config, model_dir, device)      base model + LoRA, seeded (same on every rank)
    batches = InMemoryBatches(...) | ShardedBatches(...)   synpo.training.batches
    trainer = build_trainer(config, policy, batches, device=..., world_size=..., hooks=...)
    result  = trainer.fit()

Everything else follows from the config, which is never changed: the objective and its
hyperparameters, the backend (DeepSpeed when ``deepspeed.enabled``, else plain PyTorch), the
accumulation steps and the schedule's length (``config.total_steps(batches.steps_per_epoch)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synpo.training.backend import Backend, TorchBackend
from synpo.training.batches import PairBatches
from synpo.training.config import TrainConfig
from synpo.training.model import (
    add_lora,
    enable_activation_checkpointing,
    is_video_model,
    load_base,
    training_dtype,
)
from synpo.training.trainer import LoopHooks, PreferenceTrainer

CPU = torch.device("cpu")
NO_HOOKS = LoopHooks()


@dataclass(frozen=True)
class Policy:
    """The model being trained (LoRA-wrapped, or the base itself for full fine-tuning) and its processor."""

    model: torch.nn.Module
    processor: Any  # AutoProcessor (VLM) or tokenizer (text model)
    is_video: bool


def load_policy(config: TrainConfig, model_dir: str | Path, device: torch.device = CPU) -> Policy:
    """Load ``model_dir`` in the training dtype onto ``device`` and add ``config.lora`` (then activation checkpointing,
    if asked); seeded by ``config.seed`` so every rank starts identical."""
    torch.manual_seed(config.seed)
    base, processor = load_base(model_dir, dtype=training_dtype(device), device=device)
    model = add_lora(base, config.lora).to(device)
    if config.activation_checkpointing:
        enable_activation_checkpointing(model)
    return Policy(model, processor, is_video_model(model_dir))


def make_backend(config: TrainConfig, model: torch.nn.Module, total_steps: int, device: torch.device, world_size: int) -> Backend:
    if not config.deepspeed.enabled:
        return TorchBackend(model, config.optim, total_steps)
    from synpo.training.deepspeed_backend import DeepSpeedBackend  # imports deepspeed: only where it runs

    return DeepSpeedBackend(model, config, world_size, total_steps, use_bf16=device.type == "cuda")


def build_trainer(
    config: TrainConfig,
    policy: Policy,
    batches: PairBatches,
    *,
    device: torch.device = CPU,
    world_size: int = 1,
    hooks: LoopHooks = NO_HOOKS,
) -> PreferenceTrainer:
    """The trainer for ``config`` on ``policy.model`` reading ``batches``."""
    if batches.steps_per_epoch < 1:
        raise ValueError(f"the training data make no optimizer step (effective_batch_size {config.optim.effective_batch_size})")
    backend = make_backend(config, policy.model, config.total_steps(batches.steps_per_epoch), device, world_size)
    if backend.partitions_parameters and config.diagnostics.grad_norm_every_steps:
        print("ZeRO-3 partitions the parameters: the chosen/rejected gradient split is not computed", flush=True)
    return PreferenceTrainer(config, backend, batches, device, hooks)
