"""What every caption engine takes and returns (Hugging Face and vLLM alike).

A :class:`CaptionRequest` is one video (or, for text-only models, no video) plus a prompt, sampling
parameters and a mode:

- ``plain``: one pass, ``n`` samples;
- ``retrospective``: the plain pass, then each of the ``n`` texts is refined once with the video,
  the previous description and the refinement prompt (two passes, ≈2× the cost);
- ``contrastive``: contrastive decoding (CD) between the full frames and the sparse subset;
- ``both``: CD in both passes of retrospection.

A :class:`CaptionResult` holds ``n`` :class:`Candidate` s; after retrospection each candidate keeps
the first-pass text it was refined from. Defaults follow METHOD.md (n=10, T=0.9, top_p=0.95,
top_k=32; CD a=0.5 over ``ceil(N/3)`` sparse frames, plausibility cutoff b=0.1 — the cutoff is our
addition, from VCD, and ``cutoff=0`` turns it off).

This module imports only numpy and pydantic so the vLLM venv (its own torch and transformers) can
use it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import pydantic

from synpo.config.base import StrictModel
from synpo.sampling.prompts import REFINE_TEMPLATE

Mode = Literal["plain", "retrospective", "contrastive", "both"]


class RequestRejected(ValueError):
    """The engine refused a request (longer than its context, an input the model cannot take): that video fails
    alone, as a failures row; the engine itself is fine."""


class EngineDead(RuntimeError):
    """The engine's process died (vLLM's ``EngineDeadError``): nothing more runs in this engine. An engine actor
    exits so that Ray replaces it and retries its batch (synpo.pairgen.sample_stage)."""
FinishReason = Literal["stop", "length"]


class SamplingParams(StrictModel):
    """Decoding settings for one request (METHOD.md §1 step 2: n=10, T=0.9, top_p=0.95, top_k=32)."""

    n: int = pydantic.Field(default=10, ge=1, le=64, description="candidates per request")
    temperature: float = pydantic.Field(default=0.9, ge=0, le=5, description="sampling temperature (0 = greedy)")
    top_p: float = pydantic.Field(default=0.95, gt=0, le=1, description="nucleus sampling mass")
    top_k: int = pydantic.Field(default=32, ge=0, description="keep the k most likely tokens (0 = off)")
    max_new_tokens: int = pydantic.Field(default=256, ge=1, le=8192, description="most tokens generated per pass")
    seed: int | None = pydantic.Field(default=None, description="random seed (None = nondeterministic)")
    logprobs: bool = pydantic.Field(default=False, description="return each generated token's log-probability")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @pydantic.model_validator(mode="after")
    def _greedy_is_single(self) -> SamplingParams:
        if self.greedy and self.n > 1:
            raise ValueError(f"temperature=0 (greedy) gives {self.n} identical captions; use n=1 or a temperature > 0")
        return self


class ContrastiveSettings(StrictModel):
    """Video contrastive decoding: logits = (1 + alpha) * full - alpha * sparse (METHOD.md §1 step 4)."""

    alpha: float = pydantic.Field(default=0.5, ge=0, description="weight a of the contrast (0 = plain decoding)")
    cutoff: float = pydantic.Field(
        default=0.1,
        ge=0,
        lt=1,
        description="plausibility cutoff b: keep tokens with p_full >= b * max p_full, before temperature/top-k/top-p "
        "(our addition, from VCD; 0 = off)",
    )


def _has_previous(template: str) -> str:
    if "{previous}" not in template:
        raise ValueError("the refinement template must contain {previous} (where the first pass's text goes)")
    return template


RefineTemplate = Annotated[str, pydantic.AfterValidator(_has_previous)]


@dataclass
class CaptionRequest:
    """One captioning job for an engine.

    ``frames`` is ``[N, H, W, 3]`` uint8 (``None`` for a text-only model); ``sparse_frames`` is the
    CD branch's subset, normally :attr:`SampledVideo.sparse_frames` (``None``: the engine takes
    ``ceil(N / 3)`` of ``frames``, spread uniformly). ``duration_s`` is how long the stretch of video
    the frames were sampled from lasts (uniformly over it: the whole video, or a clip); models that
    place frames in time (Qwen2.5-VL's ``second_per_grid_ts``) use it, and assume 1 s per temporal
    patch without it.
    """

    request_id: str
    prompt: str
    frames: np.ndarray | None = None
    sparse_frames: np.ndarray | None = None
    duration_s: float | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    mode: Mode = "plain"
    contrastive: ContrastiveSettings = field(default_factory=ContrastiveSettings)
    refine_template: str = REFINE_TEMPLATE

    @property
    def uses_contrast(self) -> bool:
        return self.mode in ("contrastive", "both")

    @property
    def uses_retrospection(self) -> bool:
        return self.mode in ("retrospective", "both")


@dataclass
class Candidate:
    """One generated caption; ``first_pass`` is the text it was refined from (retrospection only)."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    logprobs: list[float] | None = None  # one per token id, under the model's (full-video) distribution
    first_pass: str | None = None
    prompt_tokens: int | None = None  # tokens of the prompt this text was generated from (video tokens included)

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "token_ids": self.token_ids,
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs,
            "first_pass": self.first_pass,
            "prompt_tokens": self.prompt_tokens,
        }


@dataclass
class CaptionResult:
    request_id: str
    mode: Mode
    candidates: list[Candidate]
    frames_seen: dict[str, int] = field(default_factory=dict)  # {"full": N, "sparse": ceil(N/3)} as given to the model

    def to_dict(self) -> dict:
        return {
            "request_id": self.request_id,
            "mode": self.mode,
            "frames_seen": self.frames_seen,
            "candidates": [candidate.to_dict() for candidate in self.candidates],
        }


def check_request(request: CaptionRequest) -> None:
    """Refuse requests no engine can serve, naming what is wrong."""
    if request.uses_contrast and request.frames is None:
        raise ValueError(f"request {request.request_id!r}: contrastive decoding needs video frames (mode={request.mode!r})")
    if request.frames is not None and (request.frames.ndim != 4 or request.frames.shape[-1] != 3 or len(request.frames) == 0):
        raise ValueError(f"request {request.request_id!r}: frames must be [N, H, W, 3] with N >= 1, got shape {request.frames.shape}")
