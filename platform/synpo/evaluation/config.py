"""The evaluation job's typed config (``jobs/configs/eval*.yaml``; ``synpo config show eval``)."""

from __future__ import annotations

from typing import Literal

import pydantic

from synpo.config.base import StrictModel
from synpo.config.loader import ConfigError
from synpo.config.sections import MlflowSettings, RaySettings
from synpo.judging.config import JudgeConfig
from synpo.models import absolute_model_uri
from synpo.pairgen.config import PoolSettings
from synpo.sampling.engine import EngineSettings
from synpo.sampling.prompts import CAPTION_PROMPT
from synpo.storage import StorageConfig, absolute_uri
from synpo.video.sampler import VideoSamplingConfig


class LlmMetricSettings(StrictModel):
    """LLM-judged scores (see :mod:`synpo.evaluation.llm_metrics`): off unless ``scores`` names some."""

    scores: list[Literal["detail", "qa"]] = pydantic.Field(
        default_factory=list, description="detail: VDD-style detail score 0-5 vs the references; qa: VDC-style questions from the references answered from the caption"
    )
    judge: JudgeConfig = pydantic.Field(
        default_factory=lambda: JudgeConfig(backend="openai"), description="the judge endpoint and its client bounds (backend: openai, the default here)"
    )
    questions_per_video: int = pydantic.Field(default=5, ge=1, le=20, description="most QA questions drawn from each video's references")
    cache: str | None = pydantic.Field(
        default=None,
        description="folder or s3:// prefix of the judge's answer cache (default <output>/llm-judge-cache); share one between "
        "evaluations so every model is asked the same questions",
    )

    @pydantic.field_validator("judge", mode="before")
    @classmethod
    def _openai_by_default(cls, value: object) -> object:
        return {"backend": "openai", **value} if isinstance(value, dict) else value

    @pydantic.model_validator(mode="after")
    def _needs_llm(self) -> LlmMetricSettings:
        if self.scores and self.judge.backend != "openai":
            raise ValueError(f"metrics.llm.judge.backend={self.judge.backend!r}: LLM-judged scores need an LLM (backend: openai)")
        return self


class MetricSettings(StrictModel):
    """Which metrics are computed."""

    meteor: bool = pydantic.Field(default=True, description="METEOR (starts a Java process; the other text metrics are always on)")
    facts: Literal["auto", "on", "off"] = pydantic.Field(
        default="auto", description="toy-world fact accuracy: auto = when every reference is a toy-world caption"
    )
    llm: LlmMetricSettings = pydantic.Field(default_factory=LlmMetricSettings, description="LLM-judged scores (off by default)")


class EvalConfig(StrictModel):
    """Caption an eval set greedily with one model and score the captions against the references."""

    model: str | None = pydantic.Field(
        default=None,
        description="REQUIRED: models:/NAME/VERSION or models:/NAME@ALIAS (base + adapter from the registry), or a model as in engine.model",
    )
    adapter: str | None = pydantic.Field(default=None, description="LoRA adapter folder for a model given as a folder (registry models bring theirs)")
    eval_set: str | None = pydantic.Field(default=None, description="REQUIRED: a manifest (.jsonl/.csv/.parquet) of videos with 'references' or 'caption'")
    output: str | None = pydantic.Field(default=None, description="REQUIRED: folder or s3:// prefix for captions and the report (rerun: resumes)")
    prompt: str = pydantic.Field(default=CAPTION_PROMPT, min_length=1, description="instruction for videos whose manifest row has no prompt")
    max_new_tokens: int = pydantic.Field(default=256, ge=1, le=8192, description="longest caption, in tokens (greedy decoding)")
    video: VideoSamplingConfig = pydantic.Field(default_factory=VideoSamplingConfig, description="frames per video")
    engine: EngineSettings = pydantic.Field(default_factory=EngineSettings, description="engine kind and its settings (its model is `model`)")
    engine_pool: PoolSettings = pydantic.Field(default_factory=PoolSettings, description="caption engine actors")
    metrics: MetricSettings = pydantic.Field(default_factory=MetricSettings, description="which metrics")
    storage: StorageConfig = pydantic.Field(default_factory=StorageConfig, description="object storage (s3:// eval sets, videos, output)")
    ray: RaySettings = pydantic.Field(default_factory=RaySettings, description="where Ray runs")
    mlflow: MlflowSettings = pydantic.Field(
        default_factory=lambda: MlflowSettings(experiment="synpo-eval"), description="MLflow tracking (and the registry of models:/ URIs)"
    )

    @pydantic.model_validator(mode="after")
    def _engine_fits_pool(self) -> EvalConfig:
        self.engine.check_gpus(self.engine_pool.num_gpus)
        return self

    def require_paths(self) -> None:
        missing = [name for name in ("model", "eval_set", "output") if not getattr(self, name)]
        if missing:
            raise ConfigError(f"{', '.join(missing)}: required, e.g. model=models:/synpo-captioner@champion eval_set=DIR/manifest.jsonl output=DIR")

    def with_absolute_paths(self) -> EvalConfig:
        return self.model_copy(
            update={
                "model": absolute_model_uri(self.model) if self.model and not self.model.startswith("models:/") else self.model,
                "adapter": absolute_uri(self.adapter),
                "eval_set": absolute_uri(self.eval_set),
                "output": absolute_uri(self.output),
                "metrics": self.metrics.model_copy(update={"llm": self.metrics.llm.model_copy(update={"cache": absolute_uri(self.metrics.llm.cache)})}),
                "mlflow": self.mlflow.with_absolute_paths(),
            }
        )
