"""DeepSpeed inside a Ray Train worker: ZeRO stage 0-3 around our AdamW + linear-warmup schedule."""

from __future__ import annotations

from pathlib import Path

import deepspeed
import torch
from deepspeed.runtime.checkpoint_engine import TorchCheckpointEngine
from deepspeed.runtime.fp16.loss_scaler import LossScaler
from deepspeed.runtime.zero.config import ZeroStageEnum
from deepspeed.utils.tensor_fragment import fragment_address

from synpo.training.backend import make_optimizer
from synpo.training.config import TrainConfig
from synpo.training.model import trainable_parameters

CHECKPOINT_TAG = "state"

# The only non-tensor classes in the checkpoints ``DeepSpeedBackend.save`` writes (ZeRO 0-3, fp32 or
# bf16; found with ``torch.serialization.get_unsafe_globals_in_checkpoint``), all in the ZeRO
# ``*optim_states.pt`` files. Unpickling builds each from plain data and runs none of its code:
CHECKPOINT_CLASSES = [
    LossScaler,  # static loss scale: object.__new__ + __dict__.update (no __new__/__setstate__ of its own)
    ZeroStageEnum,  # int Enum: ZeroStageEnum(2) is a member lookup
    fragment_address,  # dataclass of two ints (numel, start): object.__new__ + __dict__.update
]


class WeightsOnlyCheckpointEngine(TorchCheckpointEngine):
    """DeepSpeed's torch checkpoint engine, loading with ``torch.load(weights_only=True)``.

    Checkpoints can come from shared storage (``s3://``), and DeepSpeed's own engine loads them with
    ``weights_only=False``: a full unpickler, so a crafted file runs any code it names (a ``__reduce__``
    returning ``(os.system, ("...",))``). The weights-only unpickler builds tensors, Python containers
    and primitives, and only the classes in :data:`CHECKPOINT_CLASSES`; anything else is an
    ``UnpicklingError`` before any of it is called. Those classes are allowed for this load only
    (``safe_globals`` as a context manager), not process-wide. Saving is DeepSpeed's, unchanged.
    """

    def load(self, path: str, map_location=None):
        with torch.serialization.safe_globals(CHECKPOINT_CLASSES):
            return torch.load(path, map_location=map_location, weights_only=True)


def deepspeed_config(config: TrainConfig, world_size: int, use_bf16: bool) -> dict:
    """DeepSpeed's config for ``config`` (its ``deepspeed`` section: ZeRO stage, overlap, bucket, reduction dtype)."""
    micro, accumulation, settings = config.optim.micro_batch_size, config.accumulation_steps, config.deepspeed
    return {
        "train_batch_size": micro * accumulation * world_size,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": config.optim.max_grad_norm,
        "zero_optimization": {
            "stage": settings.zero_stage,
            "overlap_comm": settings.overlap_comm,
            "reduce_bucket_size": settings.reduce_bucket_size,
            "contiguous_gradients": True,
        },
        "bf16": {"enabled": use_bf16},
        "communication_data_type": "fp32" if settings.fp32_communication or not use_bf16 else "bf16",
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


class DeepSpeedBackend:
    """Same interface as :class:`~synpo.training.backend.TorchBackend`; DeepSpeed scales the loss by the
    accumulation steps, reduces gradients across workers, clips and steps at the accumulation boundary.
    ``model`` is the DeepSpeed engine wrapping the module."""

    hooks_on_parameters = True  # ZeRO's gradient-reduction hooks: diagnostics must use parameter copies

    def __init__(self, model: torch.nn.Module, config: TrainConfig, world_size: int, total_steps: int, use_bf16: bool):
        parameters = [parameter for _, parameter in trainable_parameters(model)]
        self.parameters = parameters
        optimizer, scheduler = make_optimizer(parameters, config.optim, total_steps)
        self.partitions_parameters = config.deepspeed.zero_stage == 3
        self.engine, _, _, _ = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            lr_scheduler=scheduler,
            config=deepspeed_config(config, world_size, use_bf16),
            dist_init_required=False,
        )
        # Every file load_checkpoint reads (model states, ZeRO optimizer shards) goes through this
        # engine; our config sets no checkpoint writer, so DeepSpeed built a TorchCheckpointEngine from
        # the same DeepSpeedConfig, and the replacement saves exactly as it did.
        self.engine.checkpoint_engine = WeightsOnlyCheckpointEngine(self.engine._config)
        self.scheduler = scheduler

    @property
    def model(self) -> torch.nn.Module:
        return self.engine

    def backward(self, loss: torch.Tensor, accumulation_steps: int) -> None:
        self.engine.backward(loss)
        self.engine.step()  # a no-op except at the accumulation boundary

    def skip(self, accumulation_steps: int) -> None:
        """A zero loss on the trainable parameters through the engine: DeepSpeed counts the micro-batch, so its
        accumulation boundary stays the loop's, and ZeRO-2's gradient reduction sees every parameter (zeros)."""
        zero = torch.stack([parameter.sum() for parameter in self.parameters]).sum() * 0.0
        self.backward(zero, accumulation_steps)

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
        """All ranks: what :meth:`save` wrote, unpickled weights-only (see :class:`WeightsOnlyCheckpointEngine`)."""
        self.engine.load_checkpoint(str(folder), tag=CHECKPOINT_TAG, load_module_strict=False)
