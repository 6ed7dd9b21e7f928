"""DeepSpeed inside a Ray Train worker: ZeRO stage 0-3 around our AdamW + linear-warmup schedule."""

from __future__ import annotations

from pathlib import Path

import torch

from synpo.training.config import TrainConfig

CHECKPOINT_TAG = "state"


def deepspeed_config(config: TrainConfig, world_size: int, use_bf16: bool) -> dict:
    micro, accumulation = config.optim.micro_batch_size, config.accumulation_steps
    return {
        "train_batch_size": micro * accumulation * world_size,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": config.optim.max_grad_norm,
        "zero_optimization": {"stage": config.deepspeed.zero_stage},
        "bf16": {"enabled": use_bf16},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


class DeepSpeedBackend:
    """Same two calls as :class:`~synpo.training.backend.TorchBackend`; DeepSpeed scales the loss by the
    accumulation steps, reduces gradients across workers, clips and steps at the accumulation boundary."""

    def __init__(self, model: torch.nn.Module, optimizer, scheduler, config: TrainConfig, world_size: int, use_bf16: bool):
        import deepspeed

        self.engine, _, _, _ = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            lr_scheduler=scheduler,
            config=deepspeed_config(config, world_size, use_bf16),
            dist_init_required=False,
        )
        self.scheduler = scheduler

    def backward(self, loss: torch.Tensor, accumulation_steps: int) -> None:
        self.engine.backward(loss)
        self.engine.step()  # a no-op except at the accumulation boundary

    def step(self) -> float:
        """Called at the boundary, after the engine stepped; returns the pre-clip global gradient norm."""
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    @property
    def learning_rate(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def save(self, folder: Path) -> None:
        """All ranks: the trainable weights, optimizer and schedule (each rank writes its own shard files)."""
        self.engine.save_checkpoint(str(folder), tag=CHECKPOINT_TAG, exclude_frozen_parameters=True)

    def load(self, folder: Path) -> None:
        self.engine.load_checkpoint(str(folder), tag=CHECKPOINT_TAG, load_module_strict=False)
