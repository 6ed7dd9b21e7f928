"""One typed config per job. ``synpo config show JOB`` renders any of them with help text and defaults."""

from __future__ import annotations

import pydantic

from synpo.config.base import StrictModel
from synpo.judging.config import JudgeConfig
from synpo.pairgen.config import PairsConfig
from synpo.sampling.engine import EngineSettings
from synpo.sampling.prompts import CAPTION_PROMPT, REFINE_TEMPLATE
from synpo.sampling.request import ContrastiveSettings, Mode, RefineTemplate, SamplingParams
from synpo.storage import StorageConfig
from synpo.training.config import TrainConfig
from synpo.video.sampler import VideoSamplingConfig


class CaptionConfig(StrictModel):
    """`synpo caption`: caption one video with a local model folder (one greedy caption unless told otherwise)."""

    engine: EngineSettings = pydantic.Field(default_factory=EngineSettings, description="engine, model and adapter")
    prompt: str = pydantic.Field(default=CAPTION_PROMPT, min_length=1, description="the captioning instruction")
    mode: Mode = pydantic.Field(
        default="plain", description="plain, retrospective (two passes), contrastive (CD) or both (CD in both passes)"
    )
    sampling: SamplingParams = pydantic.Field(
        default_factory=lambda: SamplingParams(n=1, temperature=0.0, max_new_tokens=128),
        description="decoding (defaults here: one greedy caption; candidates use n=10, temperature=0.9)",
    )
    contrastive: ContrastiveSettings = pydantic.Field(default_factory=ContrastiveSettings, description="contrastive decoding")
    refine_template: RefineTemplate = pydantic.Field(default=REFINE_TEMPLATE, description="retrospective pass prompt ({prompt}, {previous})")
    video: VideoSamplingConfig = pydantic.Field(default_factory=VideoSamplingConfig, description="frame sampling")
    storage: StorageConfig = pydantic.Field(default_factory=StorageConfig, description="object storage (for s3:// videos)")

    @pydantic.model_validator(mode="after")
    def _engine_serves_mode(self) -> CaptionConfig:
        self.engine.check_mode(self.mode)
        return self


JOB_CONFIGS: dict[str, type[StrictModel]] = {
    "caption": CaptionConfig,
    "judge": JudgeConfig,
    "pairs": PairsConfig,
    "train": TrainConfig,
}
