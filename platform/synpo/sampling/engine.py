"""Choosing and building a caption engine from config: Hugging Face (reference, CD) or vLLM (cluster)."""

from __future__ import annotations

from typing import Literal

import pydantic

from synpo.config.base import StrictModel
from synpo.models import resolve_model
from synpo.sampling.request import Mode
from synpo.sampling.vllm_engine import NO_CONTRASTIVE_ON_VLLM, VLLMSettings
from synpo.storage import Storage


class EngineSettings(StrictModel):
    """Which engine captions, with which weights."""

    kind: Literal["hf", "vllm"] = pydantic.Field(
        default="hf", description="hf: transformers generate (CPU/GPU, contrastive decoding); vllm: vLLM (GPU clusters, no CD)"
    )
    model: str = pydantic.Field(
        default="toy://tiny-vlm", description="the model: a local folder, an s3:// prefix, a hub id or toy://tiny-vlm (synpo.models)"
    )
    adapter: str | None = pydantic.Field(default=None, description="LoRA adapter folder to apply (e.g. a training run's best adapter)")
    device: str = pydantic.Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="hf engine: auto, cpu or cuda[:N]")
    vllm: VLLMSettings = pydantic.Field(default_factory=VLLMSettings, description="vllm engine: arguments for vllm.LLM")

    def check_mode(self, mode: Mode, field: str = "mode") -> None:
        """Refuse a mode this engine cannot serve (CD on vLLM), before any work starts; ``field`` names the setting."""
        if self.kind == "vllm" and mode in ("contrastive", "both"):
            raise ValueError(f"{field}={mode!r} with engine.kind=vllm: {NO_CONTRASTIVE_ON_VLLM}")


    def check_gpus(self, gpus_per_actor: float, field: str = "engine_pool.num_gpus") -> None:
        """Refuse a vLLM model split over another number of GPUs than its actor holds (``field`` names the pool setting)."""
        parallel = self.vllm.tensor_parallel_size
        if self.kind == "vllm" and gpus_per_actor > 0 and parallel != gpus_per_actor:
            raise ValueError(
                f"engine.vllm.tensor_parallel_size ({parallel}) must equal {field} ({gpus_per_actor:g}): "
                "vLLM splits the model over the GPUs its actor holds"
            )


def build_engine(settings: EngineSettings, storage: Storage | None = None):
    """The engine ``settings`` describe, on this node's copy of ``settings.model`` (:func:`synpo.models.resolve_model`:
    a folder, s3://, a hub id or toy://); imports torch/transformers or vLLM only when chosen."""
    model_dir = resolve_model(settings.model, storage, field="engine.model")
    if settings.kind == "vllm":
        from synpo.sampling.vllm_engine import VLLMEngine

        return VLLMEngine(model_dir, settings.vllm, adapter=settings.adapter)
    from synpo.sampling.hf_engine import HFEngine

    return HFEngine(model_dir, device=settings.device, adapter=settings.adapter)
