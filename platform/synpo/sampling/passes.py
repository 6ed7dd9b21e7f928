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
"""

from __future__ import annotations

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


def run_request(run_pass: RunPass, request: CaptionRequest) -> CaptionResult:
    """Serve ``request`` with ``run_pass``: one pass, or two with retrospection."""
    check_request(request)
    contrastive = request.contrastive if request.uses_contrast else None
    first = run_pass(request, [request.prompt], request.params.n, request.params, contrastive)
    candidates = first
    if request.uses_retrospection:
        instructions = [refine_prompt(request.refine_template, request.prompt, candidate.text) for candidate in first]
        seed = None if request.params.seed is None else request.params.seed + 1
        second_params = request.params.model_copy(update={"seed": seed})
        candidates = run_pass(request, instructions, 1, second_params, contrastive)
        for refined, previous in zip(candidates, first, strict=True):
            refined.first_pass = previous.text
    frames_seen = {} if request.frames is None else {"full": len(request.frames)}
    return CaptionResult(request_id=request.request_id, mode=request.mode, candidates=candidates, frames_seen=frames_seen)
