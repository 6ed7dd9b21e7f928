"""The replication job's typed config (``jobs/configs/replicate*.yaml``; ``synpo config show replicate``).

The pair job and the evaluation job run with their own configs, nested here as ``pairs`` and
``eval``: the replication fills in their inputs, outputs, model and MLflow store. The preference
training of every (judge, objective, seed) shares ``train``.
"""

from __future__ import annotations

from typing import Literal

import pydantic

from synpo.config.base import StrictModel
from synpo.config.sections import MlflowSettings, RaySettings
from synpo.evaluation.config import EvalConfig
from synpo.losses import OBJECTIVES
from synpo.pairgen.config import PairsConfig
from synpo.training.config import LoraSettings
from synpo.video.sampler import VideoSamplingConfig

Judge = Literal["rules", "oracle"]


class ToyData(StrictModel):
    """The toy videos: one set to generate pairs on, one held out for evaluation (different seeds, no overlap)."""

    train_videos: int = pydantic.Field(default=240, ge=2, description="toy videos the pair job samples candidates for")
    heldout_videos: int = pydantic.Field(default=48, ge=1, description="held-out toy videos every model is evaluated on")
    min_duration_s: int = pydantic.Field(default=5, ge=1, description="shortest toy video, seconds")
    max_duration_s: int = pydantic.Field(default=20, ge=1, description="longest toy video, seconds")
    seed: int = pydantic.Field(default=7, description="seed of the training videos (held-out: seed + 1)")

    @pydantic.model_validator(mode="after")
    def _durations(self) -> ToyData:
        if self.max_duration_s < self.min_duration_s:
            raise ValueError(f"max_duration_s ({self.max_duration_s}) must be at least min_duration_s ({self.min_duration_s})")
        return self


class BaseModelSettings(StrictModel):
    """The base model: the tiny toy VLM warm-started (SFT on true toy captions) just long enough to be partly right."""

    warm_start_steps: int = pydantic.Field(default=150, ge=1, description="supervised steps on true toy captions (the demo model has 300)")
    seed: int = pydantic.Field(default=0, description="weights and warm-start seed (the model is cached per recipe)")


class ReplicationTraining(StrictModel):
    """One preference training per (judge, objective, seed); everything here is the same for all of them."""

    steps: int = pydantic.Field(default=60, ge=1, description="optimizer steps of every run")
    batch_size: int = pydantic.Field(default=8, ge=1, description="pairs per optimizer step")
    micro_batch_size: int = pydantic.Field(default=4, ge=1, description="pairs per forward pass")
    learning_rates: list[pydantic.PositiveFloat] = pydantic.Field(
        default=[3e-4, 1e-3],
        min_length=1,
        description="peak learning rates; every objective trains at each (objectives differ in gradient scale, so any one shared "
        "rate favours some of them)",
    )
    lora: LoraSettings = pydantic.Field(
        default_factory=lambda: LoraSettings(rank=8, alpha=16, dropout=0.0), description="the same LoRA for every objective"
    )
    max_response_tokens: int = pydantic.Field(default=160, ge=2, description="responses are cut to this many tokens")
    video: VideoSamplingConfig = pydantic.Field(
        default_factory=lambda: VideoSamplingConfig(num_frames=8, max_side=160), description="frames per pair's video"
    )
    hyperparameters: dict[str, dict[str, float]] = pydantic.Field(
        default_factory=dict, description="per objective, hyperparameters overriding its defaults, e.g. {synpo: {alpha: 30}}"
    )

    @pydantic.model_validator(mode="after")
    def _batches(self) -> ReplicationTraining:
        if self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of micro_batch_size ({self.micro_batch_size})")
        if len(set(self.learning_rates)) != len(self.learning_rates):
            raise ValueError(f"learning_rates repeat: {self.learning_rates}")
        unknown = sorted(set(self.hyperparameters) - set(OBJECTIVES))
        if unknown:
            raise ValueError(f"hyperparameters for unknown objective(s) {unknown}; objectives: {', '.join(OBJECTIVES)}")
        for objective, values in self.hyperparameters.items():
            OBJECTIVES[objective].check_names(values)  # before any pair is generated, not at the first training
        return self


class ReplicateConfig(StrictModel):
    """SynPO vs DPO, SimPO and SFT on the toy world, where every caption's facts can be checked."""

    output: str = pydantic.Field(default="runs/replicate", min_length=1, description="working folder (rerun: resumes, every finished part is reused)")
    report: str | None = pydantic.Field(
        default="docs/replication.md",
        description="where the Markdown report goes (its figures beside it, in <name>/); None: <output>/replication.md",
    )
    data: ToyData = pydantic.Field(default_factory=ToyData, description="toy videos")
    base: BaseModelSettings = pydantic.Field(default_factory=BaseModelSettings, description="the base model")
    judges: list[Judge] = pydantic.Field(default=["rules", "oracle"], min_length=1, description="who selects the pairs from the same candidates")
    oracle_min_margin: float = pydantic.Field(default=0.05, ge=0, description="oracle keeps a pair when fact F1(chosen) - F1(rejected) >= this")
    objectives: list[str] = pydantic.Field(
        default=["sft", "dpo", "simpo", "synpo", "synpo_v1"], min_length=1, description="objectives trained on every judge's pairs"
    )
    seeds: list[int] = pydantic.Field(default=[0, 1, 2], min_length=1, description="training seeds (LoRA init and data order)")
    train: ReplicationTraining = pydantic.Field(default_factory=ReplicationTraining, description="the shared training settings")
    pairs: PairsConfig = pydantic.Field(
        default_factory=PairsConfig, description="the pair job (its input, output, engine.model and mlflow are set by the replication)"
    )
    eval: EvalConfig = pydantic.Field(
        default_factory=EvalConfig, description="the evaluation job (its model, adapter, eval_set, output and mlflow are set by the replication)"
    )
    ray: RaySettings = pydantic.Field(default_factory=RaySettings, description="the Ray that the pair and evaluation jobs run on")
    mlflow: MlflowSettings | None = pydantic.Field(
        default=None, description="every part's runs (pair job, trainings, evaluations) in one store (None: sqlite:///<output>/mlflow.db)"
    )

    @pydantic.field_validator("objectives")
    @classmethod
    def _known_objectives(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in OBJECTIVES]
        if unknown:
            raise ValueError(f"unknown objective(s) {unknown}; choose from {', '.join(OBJECTIVES)}")
        if len(set(value)) != len(value):
            raise ValueError(f"objectives repeat: {value}")
        return value

    @pydantic.field_validator("judges", "seeds")
    @classmethod
    def _distinct(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError(f"values repeat: {value}")
        return value
