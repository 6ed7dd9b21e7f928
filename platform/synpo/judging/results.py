"""What goes into the judge (:class:`JudgeInput`) and what comes out (:class:`VideoJudgement`).

A :class:`VideoJudgement` keeps everything needed to audit a selection: every candidate's three
scores (``None`` where that criterion's call failed), the judge's reasoning, each failure's reason,
the selected pair or why there is none, and what the judging cost (calls, cache hits, tokens, USD).
``to_dict()`` gives plain JSON types; it never contains the API key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pydantic

from synpo.config.base import StrictModel


class JudgeInput(StrictModel):
    """One video to judge: its candidates and the reference captions of its clips."""

    video_id: str = pydantic.Field(min_length=1, description="the video's id (carried into the output)")
    prompt: str = pydantic.Field(min_length=1, description="the instruction the candidates answered (shown to the judge for C2)")
    candidates: list[str] = pydantic.Field(min_length=1, description="candidate captions of the whole video, in order")
    clip_captions: list[str] = pydantic.Field(
        min_length=1, description="captions of the video's clips, in clip order (the reference set for C1)"
    )


@dataclass
class CandidateJudgement:
    """One candidate's scores. ``total`` is ``None`` when any criterion failed: such a candidate is never selected."""

    index: int
    text: str
    c1: int | None = None
    c2: int | None = None
    c3: int | None = None
    total: float | None = None
    reasoning: dict[str, str] = field(default_factory=dict)  # criterion ("c1", "c2", "c3") -> the judge's reasoning
    failures: dict[str, str] = field(default_factory=dict)  # criterion -> why its call failed


@dataclass(frozen=True)
class PairSelection:
    """The chosen/rejected candidates (when at least two were judged) and whether the pair is kept."""

    kept: bool
    reason: str  # "margin 5.3 >= 4", "margin 2.5 < 4" or "fewer than two judged candidates (1 of 10)"
    chosen_index: int | None = None
    chosen_text: str | None = None
    chosen_score: float | None = None
    rejected_index: int | None = None
    rejected_text: str | None = None
    rejected_score: float | None = None
    margin: float | None = None


@dataclass
class VideoJudgement:
    """The judge's verdict on one video."""

    video_id: str
    prompt: str
    candidates: list[CandidateJudgement]
    pair: PairSelection
    backend: str  # "openai" or "rules"
    judge_model: str  # the model name, or the rules judge's version
    prompt_version: str  # synpo.judging.prompts.PROMPT_VERSION (rules backend: its version)
    weights: dict[str, float]
    calls: int = 0  # judge calls sent (cache hits not counted)
    http_attempts: int = 0  # HTTP requests, retries included
    failed_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VideoJudgement:
        return cls(
            **{
                **data,
                "candidates": [CandidateJudgement(**candidate) for candidate in data["candidates"]],
                "pair": PairSelection(**data["pair"]),
            }
        )
