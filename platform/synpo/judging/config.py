"""The judge's typed config (``jobs/configs/judge*.yaml``; ``synpo judge score --config ...``).

The API key is never a field: ``api_key_env`` names the environment variable that holds it, and the
client reads that variable when it is built, so the key never reaches a log line, a repr or MLflow.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlparse

import pydantic

from synpo.config.base import StrictModel

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class CriterionWeights(StrictModel):
    """Weights of the aggregate ``score = c1*C1 + c2*C2 + c3*C3`` (authors' code: 1.1, 1, 1)."""

    c1: float = pydantic.Field(default=1.1, ge=0, description="weight of C1, factuality vs the clip captions (0-5)")
    c2: float = pydantic.Field(default=1.0, ge=0, description="weight of C2, instruction fidelity/fluency/objectivity (0-5)")
    c3: float = pydantic.Field(default=1.0, ge=0, description="weight of C3, self-consistency among the candidates (0-3)")


class JudgeConfig(StrictModel):
    """How candidates are judged (METHOD.md §1 steps 5-6): which judge, how hard to push it, how to select pairs."""

    backend: Literal["openai", "rules"] = pydantic.Field(
        default="rules",
        description="'openai': an LLM behind any OpenAI-compatible chat endpoint; "
        "'rules': the offline lexical judge (a cheap, deterministic approximation, no network)",
    )
    base_url: str = pydantic.Field(
        default="http://127.0.0.1:8000/v1",
        description="OpenAI-compatible API root; requests go to {base_url}/chat/completions",
    )
    model: str = pydantic.Field(default="qwen-plus", min_length=1, description="judge model name sent in each request")
    api_key_env: str = pydantic.Field(
        default="OPENAI_API_KEY",
        min_length=1,
        description="NAME of the environment variable holding the API key (the key itself is never stored in the config); "
        "may be unset only for a loopback base_url",
    )
    max_concurrency: int = pydantic.Field(default=16, ge=1, description="most judge calls in flight at once")
    requests_per_s: float | None = pydantic.Field(
        default=None, gt=0, description="most requests started per second, evenly spaced (None = no limit)"
    )
    tokens_per_min: int | None = pydantic.Field(
        default=None,
        ge=1,
        description="token budget per minute (prompt + completion; a call reserves its estimate and is refunded "
        "the difference to the reported usage; None = no limit)",
    )
    max_retries: int = pydantic.Field(
        default=5, ge=0, description="retries after the first attempt for 429, 5xx, timeouts and connection errors"
    )
    max_malformed_retries: int = pydantic.Field(
        default=1, ge=0, description="retries of a call whose answer is not valid JSON or has a score out of range"
    )
    backoff_base_s: float = pydantic.Field(
        default=0.5, gt=0, description="retry k waits a random time in [0, min(backoff_max_s, backoff_base_s * 2**k)] (full jitter)"
    )
    backoff_max_s: float = pydantic.Field(default=30.0, gt=0, description="cap of the exponential backoff, seconds")
    timeout_s: float = pydantic.Field(default=60.0, gt=0, description="wall-clock limit of one HTTP attempt, seconds")
    response_format: Literal["json_schema", "json_object", "none"] = pydantic.Field(
        default="json_schema",
        description="what to ask the server for: a strict JSON schema per criterion, any JSON object, "
        "or nothing (for servers that reject response_format; the prompt still asks for JSON)",
    )
    max_tokens: int = pydantic.Field(
        default=1024,
        ge=1,
        description="max_tokens of each judge reply; at least max_reasoning_chars, so the longest reasoning the schema "
        "allows fits even at one token per character (plain text's worst case; real tokenizers average 3-4) and the "
        "scores after it still have room",
    )
    max_reasoning_chars: int | None = pydantic.Field(
        default=1000,
        ge=1,
        description="longest 'reasoning' string of a reply, sent as maxLength in the json_schema response_format: a judge "
        "that rambles (at temperature 0 a weak model can repeat itself until max_tokens and cut its JSON off) is made to "
        "close the string and write its scores; None sends no bound (for a server whose strict mode rejects maxLength)",
    )
    price_prompt_usd_per_1m: float = pydantic.Field(
        default=0.0, ge=0, description="price of one million prompt tokens, USD (for the cost estimate)"
    )
    price_completion_usd_per_1m: float = pydantic.Field(
        default=0.0, ge=0, description="price of one million completion tokens, USD (for the cost estimate)"
    )
    weights: CriterionWeights = pydantic.Field(default_factory=CriterionWeights, description="aggregate score weights")
    min_margin: float = pydantic.Field(
        default=4.0, ge=0, description="keep a pair only if score(chosen) - score(rejected) >= min_margin"
    )
    max_failed_fraction: float = pydantic.Field(
        default=0.5,
        ge=0,
        le=1,
        description="stop the run (non-zero exit; what was written stays resumable) once more than this share of judge calls "
        "failed after their retries: the endpoint is down, the key is wrong or the model cannot answer (1 = never stop)",
    )
    max_videos_in_flight: int = pydantic.Field(
        default=32, ge=1, description="videos one judge (one actor) works on at once; each issues 2*candidates + 1 calls"
    )

    @pydantic.model_validator(mode="after")
    def _room_for_reasoning(self) -> JudgeConfig:
        if self.max_reasoning_chars is not None and self.max_tokens < self.max_reasoning_chars:
            raise ValueError(
                f"max_tokens ({self.max_tokens}) must be at least max_reasoning_chars ({self.max_reasoning_chars}): "
                f"a reply with the longest reasoning allowed would be cut off before its scores"
            )
        return self

    @pydantic.field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {value!r}")
        return value.rstrip("/")

    @property
    def is_loopback(self) -> bool:
        """Whether ``base_url`` points at this machine (then an API key is optional)."""
        return urlparse(self.base_url).hostname in LOOPBACK_HOSTS

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Estimated price of the given token counts."""
        return (
            prompt_tokens * self.price_prompt_usd_per_1m + completion_tokens * self.price_completion_usd_per_1m
        ) / 1_000_000
