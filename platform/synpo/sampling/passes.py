"""The two passes of self-retrospective refinement, shared by every engine.

An engine implements one primitive, a *pass*: the same video with a list of instructions, each
sampled ``samples_per_instruction`` times, optionally with contrastive decoding. This module turns
a :class:`CaptionRequest` into one pass (``plain`` / ``contrastive``) or two (``retrospective`` /
``both``):

1. first pass: the request's prompt, ``n`` samples;
2. second pass: one instruction per first-pass text (the refinement template filled with it), one
   sample each — so every candidate is refined exactly once (METHOD.md §1 step 3), with the same
   decoding (and the same CD) as the first pass.

The second pass is seeded with ``seed + 1`` so a seeded request is deterministic end to end.

:func:`run_requests` drives many requests pass by pass: every request's first pass in one call of the
engine's ``run_passes``, then every refinement pass in one more (how the vLLM engine batches all videos
into one ``LLM.generate`` per pass). :func:`run_request` is one request through an engine that serves
one pass at a time (the HF engine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from synpo.sampling.prompts import refine_prompt
from synpo.sampling.request import (
    Candidate,
    CaptionRequest,
    CaptionResult,
    ContrastiveSettings,
    SamplingParams,
    check_request,
)


class RunPass(Protocol):
    def __call__(
        self,
        request: CaptionRequest,
        instructions: list[str],
        samples_per_instruction: int,
        params: SamplingParams,
        contrastive: ContrastiveSettings | None,
    ) -> list[Candidate]:
        """``len(instructions) * samples_per_instruction`` candidates, grouped by instruction in order."""
        ...


@dataclass(frozen=True)
class PassSpec:
    """One pass of one request: its instructions, each sampled ``samples_per_instruction`` times."""

    request: CaptionRequest
    instructions: list[str]
    samples_per_instruction: int
    params: SamplingParams
    contrastive: ContrastiveSettings | None


RunPasses = Callable[[list[PassSpec]], list[list[Candidate]]]
"""Serve several passes at once; one candidate list per spec, in order (grouped by instruction)."""


def run_requests(run_passes: RunPasses, requests: list[CaptionRequest]) -> list[CaptionResult]:
    """Serve ``requests`` pass by pass: all first passes in one ``run_passes`` call, then all refinements in one."""
    for request in requests:
        check_request(request)
    contrastive = [request.contrastive if request.uses_contrast else None for request in requests]
    firsts = run_passes(
        [PassSpec(request, [request.prompt], request.params.n, request.params, cd) for request, cd in zip(requests, contrastive, strict=True)]
    )
    refining = [index for index, request in enumerate(requests) if request.uses_retrospection]
    seconds = run_passes([_refinement(requests[index], firsts[index], contrastive[index]) for index in refining]) if refining else []
    candidates = list(firsts)
    for index, refined in zip(refining, seconds, strict=True):
        for candidate, previous in zip(refined, firsts[index], strict=True):
            candidate.first_pass = previous.text
        candidates[index] = refined
    return [
        CaptionResult(
            request_id=request.request_id,
            mode=request.mode,
            candidates=request_candidates,
            frames_seen={} if request.frames is None else {"full": len(request.frames)},
        )
        for request, request_candidates in zip(requests, candidates, strict=True)
    ]


def _refinement(request: CaptionRequest, first: list[Candidate], contrastive: ContrastiveSettings | None) -> PassSpec:
    """The second pass: one refinement instruction per first-pass text, one sample each, seeded ``seed + 1``."""
    instructions = [refine_prompt(request.refine_template, request.prompt, candidate.text) for candidate in first]
    seed = None if request.params.seed is None else request.params.seed + 1
    return PassSpec(request, instructions, 1, request.params.model_copy(update={"seed": seed}), contrastive)


def run_request(run_pass: RunPass, request: CaptionRequest) -> CaptionResult:
    """Serve one ``request`` with an engine that runs one pass at a time: one pass, or two with retrospection."""

    def one_at_a_time(specs: list[PassSpec]) -> list[list[Candidate]]:
        return [run_pass(spec.request, spec.instructions, spec.samples_per_instruction, spec.params, spec.contrastive) for spec in specs]

    return run_requests(one_at_a_time, [request])[0]
