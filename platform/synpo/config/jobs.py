"""One typed config per job. ``synpo config show JOB`` renders any of them with help text and defaults."""

from __future__ import annotations

import pydantic

from synpo.config.base import StrictModel
from synpo.sampling.hf_engine import GenerationSettings
from synpo.storage import StorageConfig
from synpo.toy.videos import DEFAULT_PROMPT
from synpo.training.config import TrainConfig
from synpo.video.sampler import VideoSamplingConfig


class CaptionConfig(StrictModel):
    """`synpo caption`: caption one video with a local model folder."""

    model: str = pydantic.Field(default="runs/demo/models/tiny-vlm", description="local Hugging Face model folder")
    adapter: str | None = pydantic.Field(default=None, description="LoRA adapter folder to apply (e.g. a training run's best_adapter)")
    device: str = pydantic.Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu or cuda[:N]")
    prompt: str = pydantic.Field(default=DEFAULT_PROMPT, min_length=1, description="the captioning instruction")
    video: VideoSamplingConfig = pydantic.Field(default_factory=VideoSamplingConfig, description="frame sampling")
    generation: GenerationSettings = pydantic.Field(default_factory=GenerationSettings, description="decoding settings")
    storage: StorageConfig = pydantic.Field(default_factory=StorageConfig, description="object storage (for s3:// videos)")


JOB_CONFIGS: dict[str, type[StrictModel]] = {
    "caption": CaptionConfig,
    "train": TrainConfig,
}
