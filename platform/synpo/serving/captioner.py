"""What a serving replica does with a request, without Ray: load the model, check and decode the video, caption.

    model = load_captioner(settings)                  # registry version / alias, toy model, or folder (+ adapter)
    frames = decode_checked(video_bytes, "upload", model.video, settings.limits)
    results = model.caption([CaptionJob(frames, prompt, params)])

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
from synpo.registry.resolve import REGISTRY_URI, is_registry_uri, resolve_captioner
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
    adapter: str | None  # the engine's adapter to generate with (None: the base model)
    video: VideoSamplingConfig
    prompt: str
    max_new_tokens: int
    lock: threading.Lock = field(default_factory=threading.Lock)  # one engine call (or adapter change) at a time
    loaded_at: float = field(default_factory=time.time)

    def caption(self, jobs: list[CaptionJob]) -> list[list[Candidate]]:
        """Candidates per job, all jobs in one engine call (the engine batches greedy passes across videos)."""
        requests = [
            CaptionRequest(request_id=str(index), prompt=job.prompt, frames=job.frames, params=job.params, mode=job.mode)
            for index, job in enumerate(jobs)
        ]
        with self.lock:
            if self.engine_kind == "vllm":  # its adapter is fixed when built (variants need the HF engine)
                return [result.candidates for result in self.engine.generate(requests)]
            with self.engine.using(self.adapter):
                return [result.candidates for result in self.engine.generate(requests)]

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
    video = settings.video or (VideoSamplingConfig.model_validate(recorded["video"]) if recorded.get("video") else VideoSamplingConfig())
    return LoadedCaptioner(
        name=settings.name,
        uri=settings.model,
        version=version,
        alias=alias_of(settings.model),
        engine=build_engine(engine_settings),
        engine_kind=engine_settings.kind,
        base_model=Path(base),
        adapter=DEFAULT_ADAPTER if adapter else None,
        video=video,
        prompt=settings.prompt or recorded.get("prompt") or CAPTION_PROMPT,
        max_new_tokens=settings.max_new_tokens or recorded.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS,
    )


def attach_variant(main: LoadedCaptioner, name: str, uri: str, tracking_uri: str) -> LoadedCaptioner:
    """The registry version ``uri`` names, as another adapter on ``main``'s engine (its base must be ``main``'s)."""
    if main.engine_kind != "hf":
        raise ApiError(400, f"model {name!r}: serving several adapters on one replica needs the HF engine", param="model")
    captioner = resolve_captioner(uri, tracking_uri)
    if captioner.base_model.resolve() != main.base_model.resolve():
        raise ApiError(409, f"model {name!r} ({uri}, version {captioner.version}) is trained from {captioner.base_model}, not from this deployment's base {main.base_model}", param="model")
    adapter = f"variant-{uuid.uuid4().hex[:12]}"
    with main.lock:
        main.engine.add_adapter(adapter, captioner.adapter)
    return dataclasses.replace(
        main, name=name, uri=uri, version=captioner.version, alias=alias_of(uri), adapter=adapter, loaded_at=time.time(),
        prompt=captioner.settings.get("prompt") or main.prompt, max_new_tokens=captioner.settings.get("max_new_tokens") or main.max_new_tokens,
    )  # fmt: skip


def detach_variant(variant: LoadedCaptioner) -> None:
    """Unload a variant's adapter from the engine it shares (when Serve evicts the variant)."""
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


def decode_checked(data: bytes, source: str, video: VideoSamplingConfig, limits: RequestLimits) -> np.ndarray:
    """The frames of ``data`` once its duration, size and frame count are within ``limits``; 422 for a file that
    looks like a video but cannot be decoded (truncated, no video stream), 413 for one over a limit."""
    try:
        info = probe(data, source)
        if info.duration_s > limits.max_duration_s:
            raise ApiError(413, f"{source}: the video lasts {info.duration_s:.1f} s, over the limit of {limits.max_duration_s:g} s")
        if max(info.width, info.height) > limits.max_side:
            raise ApiError(413, f"{source}: the video is {info.width}x{info.height}, over the limit of {limits.max_side} pixels a side")
        if info.num_frames > limits.max_frames:
            raise ApiError(413, f"{source}: the video has {info.num_frames} frames, over the limit of {limits.max_frames}")
        return sample_video(data, source, video).frames
    except VideoError as error:
        raise ApiError(422, f"{source}: not a decodable video: {error}") from None
