"""The training job's typed config (``jobs/configs/train*.yaml``; ``synpo config show train``)."""

from __future__ import annotations

from typing import Literal

import pydantic

from synpo.config.base import StrictModel
from synpo.config.sections import MlflowSettings, RaySettings, RegistrySettings
from synpo.losses import OBJECTIVES, ConfiguredObjective, get_objective
from synpo.models import absolute_model_uri
from synpo.storage import StorageConfig, absolute_uri
from synpo.video.sampler import VideoSamplingConfig

LANGUAGE_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraSettings(StrictModel):
    """LoRA adapters (paper App. C: rank 128, alpha 64, dropout 0.05, every linear projection of the LM)."""

    enabled: bool = pydantic.Field(default=True, description="train LoRA adapters (False = full fine-tuning of the language model)")
    rank: int = pydantic.Field(default=128, ge=1, description="LoRA rank r")
    alpha: float = pydantic.Field(default=64.0, gt=0, description="LoRA scaling numerator (lora_alpha)")
    dropout: float = pydantic.Field(default=0.05, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: list[str] = pydantic.Field(
        default_factory=lambda: list(LANGUAGE_PROJECTIONS),
        min_length=1,
        description="module names that get adapters (the language model's projections; the vision tower uses other names)",
    )
    train_vision_tower: bool = pydantic.Field(default=False, description="also train the vision tower and projector fully")


class OptimSettings(StrictModel):
    """AdamW with a linear schedule and warmup (paper App. C)."""

    learning_rate: float = pydantic.Field(default=5e-6, gt=0, description="peak learning rate")
    weight_decay: float = pydantic.Field(default=0.0, ge=0, description="AdamW weight decay")
    warmup_ratio: float = pydantic.Field(default=0.1, ge=0, lt=1, description="fraction of optimizer steps spent warming up")
    effective_batch_size: int = pydantic.Field(default=32, ge=1, description="pairs per optimizer step, over all workers")
    micro_batch_size: int = pydantic.Field(default=2, ge=1, description="pairs per forward pass on one worker")
    max_grad_norm: float = pydantic.Field(default=1.0, gt=0, description="gradient clipping threshold (global L2 norm)")
    epochs: int = pydantic.Field(default=5, ge=1, description="passes over the training pairs")
    max_steps: int | None = pydantic.Field(default=None, ge=1, description="stop after this many optimizer steps (None = all epochs)")
    skip_nonfinite_batches: int = pydantic.Field(
        default=0,
        ge=0,
        description="micro-batches with a NaN/inf loss on any worker that every worker skips together (no gradient from them) "
        "before training stops with an error that is not retried; 0 = stop at the first",
    )

    @pydantic.model_validator(mode="after")
    def _divisible(self) -> OptimSettings:
        if self.effective_batch_size % self.micro_batch_size:
            raise ValueError(
                f"effective_batch_size ({self.effective_batch_size}) must be a multiple of micro_batch_size ({self.micro_batch_size})"
            )
        return self


class DiagnosticsSettings(StrictModel):
    """What is measured during training (paper Fig. 3)."""

    log_every_steps: int = pydantic.Field(default=1, ge=1, description="log step metrics every N optimizer steps")
    grad_norm_every_steps: int = pydantic.Field(
        default=10, ge=0, description="split the gradient into chosen/rejected contributions every N steps (0 = never)"
    )
    eval_every_steps: int = pydantic.Field(default=0, ge=0, description="validate every N steps (0 = only after each epoch)")


class DataLoaderSettings(StrictModel):
    """How each worker reads its pairs' videos: in processes of its own, ahead of the step."""

    num_workers: int = pydantic.Field(
        default=2, ge=0, description="processes per training worker that read, decode and collate videos ahead of the step (0 = in the worker itself)"
    )
    prefetch_batches: int = pydantic.Field(default=2, ge=1, description="micro-batches each of those processes prepares ahead")


class ScalingSettings(StrictModel):
    """Ray Train workers (one per GPU on a cluster)."""

    num_workers: int = pydantic.Field(default=2, ge=1, description="training workers (data-parallel ranks)")
    use_gpu: bool = pydantic.Field(default=False, description="one GPU per worker (NCCL); False = CPU workers (gloo)")
    cpus_per_worker: float = pydantic.Field(default=1.0, gt=0, description="logical CPUs reserved per worker")
    resources_per_worker: dict[str, float] = pydantic.Field(
        default_factory=dict, description="custom Ray resources per worker, e.g. {synpo_train: 1} to pin workers to a node type of cluster.yaml"
    )

    @pydantic.field_validator("resources_per_worker")
    @classmethod
    def _custom_only(cls, value: dict[str, float]) -> dict[str, float]:
        reserved = sorted(set(value) & {"CPU", "GPU", "memory"})
        if reserved:
            raise ValueError(f"{reserved} are set by cpus_per_worker and use_gpu; resources_per_worker takes custom resources only")
        return value


class DeepSpeedSettings(StrictModel):
    """DeepSpeed inside each worker (optimizer and schedule come from `optim`)."""

    enabled: bool = pydantic.Field(default=True, description="wrap the model with DeepSpeed (False = plain DDP-free PyTorch, 1 worker only)")
    zero_stage: int = pydantic.Field(default=2, description="ZeRO stage: 0, 1, 2 or 3")
    overlap_comm: bool = pydantic.Field(default=True, description="reduce gradient buckets while backward still runs")
    reduce_bucket_size: int = pydantic.Field(
        default=50_000_000,
        ge=1_000_000,
        description="gradient elements per reduction bucket; below the trainable count (LoRA r128 on a 7B LM: ~320M) "
        "so buckets go out during backward, where DeepSpeed's 5e8 default makes one reduction after it",
    )
    fp32_communication: bool = pydantic.Field(
        default=True, description="reduce gradients in float32 under bf16 (LoRA gradients are small; bf16 sums lose precision over ranks)"
    )

    @pydantic.field_validator("zero_stage")
    @classmethod
    def _stage(cls, value: int) -> int:
        if value not in (0, 1, 2, 3):
            raise ValueError(f"ZeRO stage must be one of 0, 1, 2, 3, got {value}")
        return value


class RunSettings(StrictModel):
    """Where the run lives: its name, checkpoints and fault tolerance."""

    name: str = pydantic.Field(default="synpo-train", pattern=r"^[A-Za-z0-9_.-]+$", description="run name; rerunning with the same name resumes")
    storage_path: str = pydantic.Field(default="runs/ray", description="checkpoint storage: a local folder or s3:// prefix")
    max_failures: int = pydantic.Field(default=2, ge=-1, description="worker-group restarts from the last checkpoint (-1 = unlimited)")
    checkpoint_every_steps: int = pydantic.Field(default=0, ge=0, description="also checkpoint every N optimizer steps (0 = epoch ends only)")
    keep_checkpoints: int | None = pydantic.Field(
        default=2,
        ge=1,
        description="checkpoints kept: the best by best_metric (a mid-epoch checkpoint, without a validation of its own, ranks last); "
        "the latest is kept besides, to resume from. None = keep all",
    )


class TrainConfig(StrictModel):
    """Preference training of a (video) VLM with LoRA: SynPO or a DPO-family baseline."""

    pairs: str | None = pydantic.Field(
        default=None, description="REQUIRED preference pairs: .parquet/.jsonl file or folder, LLaMA-Factory .json"
    )
    val_pairs: str | None = pydantic.Field(default=None, description="validation pairs (None = split val_fraction off pairs)")
    val_fraction: float = pydantic.Field(default=0.1, ge=0, lt=1, description="share of pairs held out when val_pairs is None")
    model: str = pydantic.Field(
        default="toy://tiny-vlm",
        description="the base model: a local folder, an s3:// prefix (downloaded once per node), a hub id, or toy://tiny-vlm (synpo.models)",
    )
    objective: str = pydantic.Field(
        default="synpo", description=f"one of: {', '.join(OBJECTIVES)} (SynPO's variants are objectives of their own: synpo_v1..synpo_v5)"
    )
    hyperparameters: dict[str, float] = pydantic.Field(
        default_factory=dict, description="the objective's numeric hyperparameters overriding its defaults (e.g. {alpha: 30, beta: 0.2})"
    )
    reference: Literal["adapters_off", "precomputed"] = pydantic.Field(
        default="adapters_off",
        description="reference log-probs for DPO-style objectives: same model with LoRA disabled, or ref_* columns in the pairs",
    )
    lora: LoraSettings = pydantic.Field(default_factory=LoraSettings, description="LoRA adapters")
    optim: OptimSettings = pydantic.Field(default_factory=OptimSettings, description="optimizer and schedule")
    diagnostics: DiagnosticsSettings = pydantic.Field(default_factory=DiagnosticsSettings, description="training diagnostics")
    video: VideoSamplingConfig = pydantic.Field(default_factory=VideoSamplingConfig, description="frames per training video")
    max_response_tokens: int = pydantic.Field(default=512, ge=2, description="responses are cut to this many tokens (EOS included)")
    encode_video_once: bool = pydantic.Field(default=True, description="encode each pair's video once for chosen and rejected")
    activation_checkpointing: bool = pydantic.Field(
        default=False,
        description="recompute decoder-layer activations in backward instead of storing them (~0.3 MB per token per layer "
        "for a 7B model with LoRA r128 in bf16): on for long video prompts on GPUs, at the cost of one more forward per layer",
    )
    best_metric: Literal["val/loss", "val/accuracy", "val/margin", "val/nll_chosen"] = pydantic.Field(
        default="val/accuracy", description="validation metric that picks the epoch kept (loss/NLL: lower is better)"
    )
    seed: int = pydantic.Field(default=0, description="seed for data order, dropout and the validation split")
    storage: StorageConfig = pydantic.Field(default_factory=StorageConfig, description="object storage (for s3:// pairs and videos)")
    data: DataLoaderSettings = pydantic.Field(default_factory=DataLoaderSettings, description="video reading processes per worker")
    scaling: ScalingSettings = pydantic.Field(default_factory=ScalingSettings, description="Ray Train workers")
    deepspeed: DeepSpeedSettings = pydantic.Field(default_factory=DeepSpeedSettings, description="DeepSpeed ZeRO")
    run: RunSettings = pydantic.Field(default_factory=RunSettings, description="run name, checkpoints, fault tolerance")
    ray: RaySettings = pydantic.Field(default_factory=RaySettings, description="where Ray runs")
    mlflow: MlflowSettings = pydantic.Field(default_factory=MlflowSettings, description="MLflow tracking (run_name None: run.name)")
    registry: RegistrySettings = pydantic.Field(default_factory=RegistrySettings, description="where the best model is registered")

    @pydantic.field_validator("objective")
    @classmethod
    def _known_objective(cls, value: str) -> str:
        if value not in OBJECTIVES:
            raise ValueError(f"unknown objective {value!r}; allowed: {', '.join(OBJECTIVES)}")
        return value

    @pydantic.model_validator(mode="before")
    @classmethod
    def _hyperparameter_names(cls, data):
        """Names first (before the values must parse as numbers), so a misplaced key gets the helpful error."""
        if isinstance(data, dict) and isinstance(data.get("hyperparameters"), dict) and data.get("objective", "synpo") in OBJECTIVES:
            get_objective(data.get("objective", "synpo")).check_names(data["hyperparameters"])
        return data

    @pydantic.model_validator(mode="after")
    def _hyperparameters_fit_objective(self) -> TrainConfig:
        self.loss_objective()  # unknown hyperparameters are an error here, before any work
        changes_base = self.lora.train_vision_tower or not self.lora.enabled
        if changes_base and OBJECTIVES[self.objective].needs_reference and self.reference == "adapters_off":
            raise ValueError(
                "full fine-tuning (lora.enabled=false) or lora.train_vision_tower changes weights outside the adapters, "
                "so 'adapters_off' is no longer the reference; use reference=precomputed"
            )
        return self

    @pydantic.model_validator(mode="after")
    def _batch_fits_workers(self) -> TrainConfig:
        per_step = self.optim.micro_batch_size * self.scaling.num_workers
        if self.optim.effective_batch_size % per_step:
            raise ValueError(
                f"optim.effective_batch_size ({self.optim.effective_batch_size}) must be a multiple of "
                f"micro_batch_size x num_workers ({self.optim.micro_batch_size} x {self.scaling.num_workers})"
            )
        if not self.mlflow.enabled:
            raise ValueError("mlflow.enabled=false: training tracks its run and registers its model in MLflow; point mlflow.tracking_uri at a local sqlite file instead")
        if self.optim.skip_nonfinite_batches and self.deepspeed.enabled and self.deepspeed.zero_stage == 3:
            raise ValueError("optim.skip_nonfinite_batches needs ZeRO stage 0-2: ZeRO-3 partitions the parameters, so a skipped "
                             "micro-batch cannot give them a zero gradient outside a forward; set it to 0 (stop at the first)")  # fmt: skip
        if not self.deepspeed.enabled and self.scaling.num_workers > 1:
            raise ValueError("deepspeed.enabled=false trains in one worker only; set scaling.num_workers=1")
        return self

    def with_absolute_paths(self) -> TrainConfig:
        """A copy whose local paths are absolute, so Ray workers (other working directories) find them."""

        return self.model_copy(
            update={
                "pairs": absolute_uri(self.pairs),
                "val_pairs": absolute_uri(self.val_pairs),
                "model": absolute_model_uri(self.model),
                "run": self.run.model_copy(update={"storage_path": absolute_uri(self.run.storage_path)}),
                "mlflow": self.mlflow.with_absolute_paths(),
            }
        )

    def loss_objective(self) -> ConfiguredObjective:
        """The objective named by ``objective`` with ``hyperparameters`` applied."""
        return get_objective(self.objective).configure(self.hyperparameters)

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps the run makes: every epoch, or ``optim.max_steps`` if that comes first."""
        return min(self.optim.epochs * steps_per_epoch, self.optim.max_steps or 10**12)

    @property
    def accumulation_steps(self) -> int:
        return self.optim.effective_batch_size // (self.optim.micro_batch_size * self.scaling.num_workers)

    @property
    def best_is_lower(self) -> bool:
        return self.best_metric in ("val/loss", "val/nll_chosen")
