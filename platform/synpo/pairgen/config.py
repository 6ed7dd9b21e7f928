"""The pair-generation job's typed config (``jobs/configs/pairs*.yaml``; ``synpo config show pairs``)."""

from __future__ import annotations

import pydantic

from synpo.config.base import StrictModel
from synpo.config.sections import MlflowSettings, RaySettings
from synpo.judging.config import JudgeConfig
from synpo.models import absolute_model_uri
from synpo.sampling.engine import EngineSettings
from synpo.sampling.prompts import CAPTION_PROMPT, CLIP_PROMPT, REFINE_TEMPLATE
from synpo.sampling.request import ContrastiveSettings, Mode, RefineTemplate, SamplingParams
from synpo.storage import StorageConfig, absolute_uri
from synpo.video.sampler import VideoSamplingConfig


class CandidateSettings(StrictModel):
    """Whole-video candidates (METHOD.md §1 steps 2-4): n samples, refined once, optionally with CD."""

    mode: Mode = pydantic.Field(
        default="both", description="plain, retrospective, contrastive or both (CD in both passes; paper Table 1's best)"
    )
    sampling: SamplingParams = pydantic.Field(default_factory=SamplingParams, description="n=10, T=0.9, top_p=0.95, top_k=32")
    contrastive: ContrastiveSettings = pydantic.Field(default_factory=ContrastiveSettings, description="contrastive decoding")
    refine_template: RefineTemplate = pydantic.Field(default=REFINE_TEMPLATE, description="retrospective pass prompt")


class ClipSettings(StrictModel):
    """Clip captions, the judge's reference set for C1 (METHOD.md §1 step 1): greedy, then one greedy refinement."""

    prompt: str = pydantic.Field(default=CLIP_PROMPT, min_length=1, description="instruction for each clip")
    refine: bool = pydantic.Field(default=True, description="refine each clip caption once (retrospection)")
    max_new_tokens: int = pydantic.Field(default=256, ge=1, le=8192, description="most tokens per clip caption pass (paper: 800)")


class PoolSettings(StrictModel):
    """An actor pool of one stage: autoscaling bounds, resources per actor, rows per call."""

    min_actors: int = pydantic.Field(default=1, ge=1, description="actors kept alive")
    max_actors: int = pydantic.Field(default=1, ge=1, description="actors the pool may scale up to")
    num_gpus: float = pydantic.Field(default=0.0, ge=0, description="GPUs per actor")
    num_cpus: float = pydantic.Field(default=0.5, gt=0, description="logical CPUs per actor")
    batch_size: int = pydantic.Field(default=4, ge=1, description="videos per call")
    python: str | None = pydantic.Field(
        default=None,
        min_length=1,
        description="the Python interpreter this pool's actors run in (Ray's runtime_env py_executable), e.g. /opt/vllm/bin/python "
        "on the cluster image, where vLLM has a venv of its own (its torch and transformers pins differ from synpo's); None = the job's",
    )
    max_restarts: int = pydantic.Field(
        default=3, ge=-1, description="times Ray restarts an actor that died (e.g. its vLLM engine did), retrying its batch; -1 = always"
    )
    spread: bool = pydantic.Field(default=False, description="place actors on as many nodes as possible (Ray's SPREAD strategy)")
    resources: dict[str, float] = pydantic.Field(
        default_factory=dict, description="custom Ray resources per actor, e.g. {synpo_sample: 1} to pin engines to a node type of cluster.yaml"
    )

    @pydantic.model_validator(mode="after")
    def _bounds(self) -> PoolSettings:
        if self.min_actors > self.max_actors:
            raise ValueError(f"min_actors ({self.min_actors}) must not exceed max_actors ({self.max_actors})")
        return self


class PairsConfig(StrictModel):
    """Build preference pairs from videos: decode -> sample candidates and clip captions -> judge -> select -> write."""

    input: str | None = pydantic.Field(
        default=None, description="REQUIRED: a manifest (.jsonl/.csv/.parquet with video[, id, prompt]) or a folder/prefix of videos"
    )
    output: str | None = pydantic.Field(default=None, description="REQUIRED: output folder or s3:// prefix; rerunning resumes")
    prompt: str = pydantic.Field(default=CAPTION_PROMPT, min_length=1, description="instruction for videos whose manifest row has none")
    limit: int | None = pydantic.Field(default=None, ge=1, description="only the first N videos of the input")
    seed: int = pydantic.Field(default=0, description="base seed; each video samples with a seed derived from it and the video id")
    video: VideoSamplingConfig = pydantic.Field(default_factory=VideoSamplingConfig, description="frames per video and clip")
    engine: EngineSettings = pydantic.Field(default_factory=EngineSettings, description="caption engine and model")
    candidates: CandidateSettings = pydantic.Field(default_factory=CandidateSettings, description="whole-video candidates")
    clips: ClipSettings = pydantic.Field(default_factory=ClipSettings, description="clip captions (the judge's references)")
    judge: JudgeConfig = pydantic.Field(default_factory=JudgeConfig, description="the LLM judge (or the offline rules judge)")
    judge_cache_flush_s: float = pydantic.Field(
        default=5.0, gt=0, description="also write new judge answers to the cache this often (what a killed job can lose)"
    )
    decode_num_cpus: float = pydantic.Field(default=0.5, gt=0, description="logical CPUs per decode task")
    engine_pool: PoolSettings = pydantic.Field(default_factory=PoolSettings, description="caption engine actors")
    judge_pool: PoolSettings = pydantic.Field(
        default_factory=lambda: PoolSettings(num_cpus=0.25, batch_size=8), description="judge actors (async, I/O-bound)"
    )
    write_batch_size: int = pydantic.Field(default=16, ge=1, description="videos per written part file")
    storage: StorageConfig = pydantic.Field(default_factory=StorageConfig, description="object storage (s3:// input/output)")
    ray: RaySettings = pydantic.Field(default_factory=RaySettings, description="where Ray runs")
    mlflow: MlflowSettings = pydantic.Field(
        default_factory=lambda: MlflowSettings(experiment="synpo-pairs"), description="run summary tracking (run_name None: pairs-<output folder>)"
    )

    @pydantic.model_validator(mode="after")
    def _engine_serves_mode(self) -> PairsConfig:
        self.engine.check_mode(self.candidates.mode, field="candidates.mode")
        self.engine.check_gpus(self.engine_pool.num_gpus)
        if self.candidates.sampling.n < 2:
            raise ValueError(f"candidates.sampling.n must be >= 2 to form a pair, got {self.candidates.sampling.n}")
        return self

    def require_paths(self) -> None:
        """``input`` and ``output`` are required to run (not to show the config)."""
        missing = [name for name in ("input", "output") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"missing required setting(s): {', '.join(missing)} (e.g. input=s3://bucket/videos/ output=runs/pairs)")

    def with_absolute_paths(self) -> PairsConfig:
        """Local paths made absolute, so Ray workers (other working directories) find them."""

        return self.model_copy(
            update={
                "input": absolute_uri(self.input),
                "output": absolute_uri(self.output),
                "engine": self.engine.model_copy(update={"model": absolute_model_uri(self.engine.model), "adapter": absolute_uri(self.engine.adapter)}),
                "mlflow": self.mlflow.with_absolute_paths(),
            }
        )
