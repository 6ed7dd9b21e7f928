"""vLLM for online serving: ``AsyncLLM``, so requests from many coroutines share the GPU as they arrive.

    engine = AsyncVLLMEngine(model_dir, VLLMSettings(...), adapter=None)
    candidates = await engine.caption(frames, prompt, params, adapter="/path/to/lora")   # from any coroutine

The offline :class:`~synpo.sampling.vllm_engine.VLLMEngine` takes a list of requests and runs them
as one batch; here each request is awaited on its own and vLLM's scheduler batches whatever is in
flight (continuous batching: a short caption leaves the batch as soon as it ends and a new request
takes its place). Prompts, sampling parameters (seeds included), LoRA requests and the candidates
are built exactly as the offline engine builds them (the same functions), so a greedy caption is the
same from either engine. One adapter per request: several LoRA adapters of one base are served
side by side (``VLLMSettings.enable_lora``, at most ``max_loras`` resident at once, vLLM's LRU).

Plain decoding only: retrospection's second pass and contrastive decoding are batch-job features.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from synpo.errors import ModelNotFound
from synpo.sampling.request import Candidate, SamplingParams
from synpo.sampling.vllm_engine import (
    VLLMLoadError,
    VLLMSettings,
    chat_prompt,
    load_failure_reason,
    lora_request,
    media_limits,
    settings_for_adapter,
    to_candidate,
    vllm_sampling,
)


class AsyncVLLMEngine:
    """A local model folder served by ``vllm.v1.engine.async_llm.AsyncLLM``. Build it inside the process that serves."""

    def __init__(self, model_dir: str | Path, settings: VLLMSettings | None = None, adapter: str | Path | None = None) -> None:
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        model_path = Path(model_dir)
        if not (model_path / "config.json").is_file():
            raise ModelNotFound(f"{str(model_dir)!r} is not a model folder (no config.json)")
        self.settings = settings_for_adapter(settings or VLLMSettings(), adapter)
        self._adapter_ids: dict[str, int] = {}
        self.default_adapter = None if adapter is None else str(Path(adapter).resolve())
        lora_request(self.default_adapter, self._adapter_ids, self.settings)  # checks the folder and enable_lora now
        arguments = {**media_limits(model_path), **self.settings.llm_kwargs(), "disable_log_stats": True}
        try:
            self.llm = AsyncLLM.from_engine_args(AsyncEngineArgs(model=str(model_path), **arguments))
        except (ValueError, RuntimeError) as error:
            raise VLLMLoadError(f"vLLM cannot load the model at {str(model_path)!r}: {load_failure_reason(error)}") from error
        self.tokenizer = self.llm.get_tokenizer()

    async def caption(self, frames: np.ndarray | None, prompt: str, params: SamplingParams, adapter: str | None = None) -> list[Candidate]:
        """``params.n`` candidates for one video, with ``adapter`` (a LoRA folder; None: the engine's default adapter)."""
        chosen = lora_request(adapter or self.default_adapter, self._adapter_ids, self.settings)
        final = None
        async for output in self.llm.generate(
            chat_prompt(self.tokenizer, prompt, frames), vllm_sampling(params, params.n, 0), f"caption-{uuid.uuid4().hex}", lora_request=chosen
        ):
            final = output
        return [to_candidate(completion, params.logprobs, len(final.prompt_token_ids)) for completion in final.outputs]

    def shutdown(self) -> None:
        self.llm.shutdown()
