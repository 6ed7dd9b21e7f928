"""Aggregate the three criteria and select the preference pair (METHOD.md §1 step 6).

    total   = w1*C1 + w2*C2 + w3*C3          (authors' code: 1.1, 1, 1; best possible 1.1*5 + 5 + 3 = 13.5), rounded to 6 decimals
    chosen  = argmax total,  rejected = argmin total,  over candidates whose three calls all succeeded
    kept    = total(chosen) - total(rejected) >= min_margin   (default 4)

Ties are broken by position, deterministically: among equal totals the *lowest* index is chosen and
the *highest* index is rejected, so chosen and rejected always differ when two or more candidates
were judged (with all totals equal the pair exists, with margin 0, and is not kept). A candidate
with any failed criterion has no total and takes no part (the authors' code scores it -100 and
skips it); fewer than two judged candidates means no pair.

Totals are rounded to 6 decimals so that 1.1*C1 sums compare exactly (1.1*3 = 3.3000000000000003).
"""

from __future__ import annotations

from synpo.judging.config import CriterionWeights
from synpo.judging.results import CandidateJudgement, PairSelection


def total_score(c1: int | None, c2: int | None, c3: int | None, weights: CriterionWeights) -> float | None:
    """``w1*c1 + w2*c2 + w3*c3``, or ``None`` if any criterion is missing."""
    if c1 is None or c2 is None or c3 is None:
        return None
    return round(weights.c1 * c1 + weights.c2 * c2 + weights.c3 * c3, 6)


def select_pair(candidates: list[CandidateJudgement], min_margin: float) -> PairSelection:
    """Chosen = best total (lowest index on ties), rejected = worst total (highest index on ties)."""
    judged = [candidate for candidate in candidates if candidate.total is not None]
    if len(judged) < 2:
        return PairSelection(kept=False, reason=f"fewer than two judged candidates ({len(judged)} of {len(candidates)})")
    chosen = min(judged, key=lambda candidate: (-candidate.total, candidate.index))
    rejected = max(judged, key=lambda candidate: (-candidate.total, candidate.index))
    margin = round(chosen.total - rejected.total, 6)
    kept = margin >= min_margin
    return PairSelection(
        kept=kept,
        reason=f"margin {margin:g} {'>=' if kept else '<'} {min_margin:g}",
        chosen_index=chosen.index,
        chosen_text=chosen.text,
        chosen_score=chosen.total,
        rejected_index=rejected.index,
        rejected_text=rejected.text,
        rejected_score=rejected.total,
        margin=margin,
    )
