"""What a serving replica does with a request, without Ray: load the model, check and decode the video, caption.

    model = load_captioner(settings)                  # registry version / alias, toy model, or folder (+ adapter)
    frames, duration_s = decode_checked(video_bytes, "upload", model.video, settings.limits)
    results = model.caption([CaptionJob(frames, prompt, params, duration_s=duration_s)])

A model named by alias (``models:/NAME@champion``) is resolved to the version the alias holds now;
:func:`alias_version` tells a replica whether it has moved since (see :mod:`synpo.serving.deployment`).
Every problem with a request is an :class:`ApiError` carrying the HTTP status to answer with.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synpo.errors import UserError
from synpo.models import resolve_model
from synpo.registry.resolve import REGISTRY_URI, Captioner, is_registry_uri, resolve_captioner
from synpo.sampling.engine import build_engine
from synpo.sampling.hf_engine import DEFAULT_ADAPTER
from synpo.sampling.prompts import CAPTION_PROMPT
from synpo.sampling.request import Candidate, CaptionRequest, Mode, SamplingParams
from synpo.serving.settings import RequestLimits, ServeSettings
from synpo.video.decode import probe
from synpo.video.errors import VideoError
from synpo.video.sampler import VideoSamplingConfig, sample_video

DEFAULT_MAX_NEW_TOKENS = 256


class ApiError(UserError):
    """A request the API cannot serve: ``status`` (4xx for the caller's mistakes) and OpenAI's error ``type``."""

    def __init__(self, status: int, message: str, error_type: str = "invalid_request_error", param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.error_type, self.param = status, error_type, param


@dataclass
class CaptionJob:
    frames: np.ndarray  # [N, H, W, 3] uint8
    prompt: str
    params: SamplingParams
    mode: Mode = "plain"
    duration_s: float | None = None  # how long the video lasts (the frames span it)


@dataclass
class LoadedCaptioner:
    """One model ready to caption, with the settings requests default to. Variants (other LoRA adapters of
    the same base) share the main model's engine and its lock, each with its own adapter name."""

    name: str  # what clients call it
    uri: str  # as configured (an alias stays an alias)
    version: str | None  # the registry version loaded (None for a folder or toy model)
    alias: str | None
    engine: object
    engine_kind: str  # "hf" or "vllm"
    base_model: Path  # the base weights' folder (variants must share it)
    adapter: str | None  # HF: the engine's adapter name (None: the base model); vLLM: a LoRA folder (None: the engine's default)
    video: VideoSamplingConfig
    prompt: str
    max_new_tokens: int
    lock: threading.Lock = field(default_factory=threading.Lock)  # one engine call (or adapter change) at a time
    loaded_at: float = field(default_factory=time.time)

    def caption(self, jobs: list[CaptionJob]) -> list[list[Candidate]]:
        """Candidates per job, all jobs in one engine call (the engine batches greedy passes across videos)."""
        requests = [
            CaptionRequest(request_id=str(index), prompt=job.prompt, frames=job.frames, params=job.params, mode=job.mode, duration_s=job.duration_s)
            for index, job in enumerate(jobs)
        ]
        with self.lock, self.engine.using(self.adapter):
            return [result.candidates for result in self.engine.generate(requests)]

    async def caption_async(self, job: CaptionJob) -> list[Candidate]:
        """One job on the async vLLM engine: vLLM schedules it with whatever else is in flight (no lock, no batch)."""
        return await self.engine.caption(job.frames, job.prompt, job.params, adapter=self.adapter)

    def describe(self) -> dict:
        return {"name": self.name, "uri": self.uri, "version": self.version, "alias": self.alias, "loaded_at": int(self.loaded_at)}


def alias_of(uri: str) -> str | None:
    match = REGISTRY_URI.match(uri)
    return match["alias"] if match else None


def load_captioner(settings: ServeSettings) -> LoadedCaptioner:
    """``settings.model`` loaded into its engine. A registry version brings its adapter and its recorded
    video, prompt and length settings (the settings' own values win when given)."""
    recorded: dict = {}
    version = None
    if is_registry_uri(settings.model):
        captioner = resolve_captioner(settings.model, settings.tracking_uri)
        base, adapter = captioner.base_model, str(captioner.adapter)
        recorded, version = captioner.settings, captioner.version
    else:
        base, adapter = resolve_model(settings.model, field="model"), settings.adapter
    engine_settings = settings.engine.model_copy(update={"model": str(base), "adapter": adapter})
    if engine_settings.kind == "vllm":  # online: AsyncLLM, continuous batching
        from synpo.sampling.vllm_async import AsyncVLLMEngine

        engine = AsyncVLLMEngine(base, engine_settings.vllm, adapter=adapter)
    else:
        engine = build_engine(engine_settings)
    video, prompt, max_new_tokens = _request_defaults(settings, recorded)
    return LoadedCaptioner(
        name=settings.name,
        uri=settings.model,
        version=version,
        alias=alias_of(settings.model),
        engine=engine,
        engine_kind=engine_settings.kind,
        base_model=Path(base),
        adapter=DEFAULT_ADAPTER if adapter and engine_settings.kind == "hf" else None,
        video=video,
        prompt=prompt,
        max_new_tokens=max_new_tokens,
    )


def _request_defaults(settings: ServeSettings, recorded: dict) -> tuple[VideoSamplingConfig, str, int]:
    """Frames, prompt and caption length for requests that set none: the settings', else the version's recorded ones."""
    video = settings.video or (VideoSamplingConfig.model_validate(recorded["video"]) if recorded.get("video") else VideoSamplingConfig())
    return video, settings.prompt or recorded.get("prompt") or CAPTION_PROMPT, settings.max_new_tokens or recorded.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS


def _share_engine(main: LoadedCaptioner, captioner: Captioner, what: str) -> str:
    """Put ``captioner``'s adapter on ``main``'s engine (its base must be ``main``'s); returns what selects it."""
    if captioner.base_model.resolve() != main.base_model.resolve():
        raise ApiError(409, f"{what} (version {captioner.version}) is trained from {captioner.base_model}, not from this deployment's base {main.base_model}", param="model")
    if main.engine_kind == "vllm":  # a LoRA request per call; vLLM keeps the recently used adapters resident
        if not main.engine.settings.enable_lora:
            raise ApiError(400, f"{what}: serving adapters with vLLM needs engine.vllm.enable_lora=true", param="model")
        return str(captioner.adapter)
    adapter = f"adapter-{captioner.version}-{uuid.uuid4().hex[:8]}"
    with main.lock:
        main.engine.add_adapter(adapter, captioner.adapter)
    return adapter


def attach_variant(main: LoadedCaptioner, name: str, uri: str, tracking_uri: str) -> LoadedCaptioner:
    """The registry version ``uri`` names, as another adapter on ``main``'s engine."""
    captioner = resolve_captioner(uri, tracking_uri)
    adapter = _share_engine(main, captioner, f"model {name!r} ({uri})")
    return dataclasses.replace(
        main, name=name, uri=uri, version=captioner.version, alias=alias_of(uri), adapter=adapter, loaded_at=time.time(),
        prompt=captioner.settings.get("prompt") or main.prompt, max_new_tokens=captioner.settings.get("max_new_tokens") or main.max_new_tokens,
    )  # fmt: skip


def reload_captioner(current: LoadedCaptioner, settings: ServeSettings) -> LoadedCaptioner:
    """The version ``settings.model``'s alias names now. Trained from the same base (the usual case), its adapter
    joins the engine already loaded, so the GPU never holds two copies of the base; else the model loads anew.
    The previous version's adapter stays loaded (requests in flight still use it)."""
    captioner = resolve_captioner(settings.model, settings.tracking_uri)
    if captioner.base_model.resolve() != current.base_model.resolve():
        return load_captioner(settings)
    adapter = _share_engine(current, captioner, settings.model)
    video, prompt, max_new_tokens = _request_defaults(settings, captioner.settings)
    return dataclasses.replace(
        current, version=captioner.version, adapter=adapter, video=video, prompt=prompt, max_new_tokens=max_new_tokens, loaded_at=time.time()
    )


def detach_variant(variant: LoadedCaptioner) -> None:
    """Unload a variant's adapter from the engine it shares (when Serve evicts the variant; vLLM manages its own)."""
    if variant.engine_kind == "vllm":
        return
    with variant.lock:
        variant.engine.remove_adapter(variant.adapter)


def alias_version(settings: ServeSettings) -> str | None:
    """The version ``settings.model``'s alias names in the registry now (None when the model is not an alias)."""
    if alias_of(settings.model) is None:
        return None
    from mlflow import MlflowClient

    match = REGISTRY_URI.match(settings.model)
    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    return str(client.get_model_version_by_alias(match["name"], match["alias"]).version)


def decode_checked(data: bytes, source: str, video: VideoSamplingConfig, limits: RequestLimits) -> tuple[np.ndarray, float]:
    """The frames of ``data`` and its duration once its duration, size and frame count are within ``limits``; 422 for a file that
    looks like a video but cannot be decoded (truncated, no video stream), 413 for one over a limit."""
    try:
        info = probe(data, source)
        if info.duration_s > limits.max_duration_s:
            raise ApiError(413, f"{source}: the video lasts {info.duration_s:.1f} s, over the limit of {limits.max_duration_s:g} s")
        if max(info.width, info.height) > limits.max_side:
            raise ApiError(413, f"{source}: the video is {info.width}x{info.height}, over the limit of {limits.max_side} pixels a side")
        if info.num_frames > limits.max_frames:
            raise ApiError(413, f"{source}: the video has {info.num_frames} frames, over the limit of {limits.max_frames}")
        return sample_video(data, source, video, info=info).frames, info.duration_s  # probed once: the checks above used it
    except VideoError as error:
        raise ApiError(422, f"{source}: not a decodable video: {error}") from None
