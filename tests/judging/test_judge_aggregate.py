"""Aggregation and pair selection: golden cases worked out by hand (weights 1.1, 1, 1; margin 4)."""

from __future__ import annotations

from synpo.judging import CriterionWeights, select_pair, total_score
from synpo.judging.results import CandidateJudgement

WEIGHTS = CriterionWeights()


def judged(*scores: tuple[int | None, int | None, int | None]) -> list[CandidateJudgement]:
    candidates = []
    for index, (c1, c2, c3) in enumerate(scores):
        candidate = CandidateJudgement(index=index, text=f"caption {index}", c1=c1, c2=c2, c3=c3)
        candidate.total = total_score(c1, c2, c3, WEIGHTS)
        candidates.append(candidate)
    return candidates


def test_total_uses_the_weights():
    """The best possible total is 1.1*5 + 5 + 3 = 13.5; 1.1*3 + 2 + 1 = 6.3 exactly."""
    assert total_score(5, 5, 3, WEIGHTS) == 13.5
    assert total_score(3, 2, 1, WEIGHTS) == 6.3  # not 6.300000000000001: totals are rounded to 6 decimals
    assert total_score(5, 5, 3, CriterionWeights(c1=2.0, c2=0.5, c3=0.0)) == 12.5  # 2*5 + 0.5*5 + 0*3
    assert total_score(4, None, 2, WEIGHTS) is None


def test_argmax_and_argmin_with_a_kept_margin():
    """Totals: 0 -> 1.1*4+4+2 = 10.4, 1 -> 1.1*1+2+1 = 4.1, 2 -> 1.1*5+5+3 = 13.5.
    chosen = 2 (13.5), rejected = 1 (4.1), margin 9.4 >= 4: kept."""
    pair = select_pair(judged((4, 4, 2), (1, 2, 1), (5, 5, 3)), min_margin=4.0)
    assert (pair.chosen_index, pair.rejected_index, pair.chosen_score, pair.rejected_score) == (2, 1, 13.5, 4.1)
    assert pair.margin == 9.4 and pair.kept and pair.reason == "margin 9.4 >= 4"
    assert (pair.chosen_text, pair.rejected_text) == ("caption 2", "caption 1")


def test_margin_below_threshold_is_not_kept_but_reported():
    """Totals 1.1*4+4+2 = 10.4 and 1.1*3+3+2 = 8.3: margin 2.1 < 4, so no pair is kept."""
    pair = select_pair(judged((4, 4, 2), (3, 3, 2)), min_margin=4.0)
    assert (pair.chosen_index, pair.rejected_index, pair.margin, pair.kept) == (0, 1, 2.1, False)
    assert pair.reason == "margin 2.1 < 4"


def test_margin_exactly_at_threshold_is_kept():
    """1.1*0 + 4 + 0 = 4 vs 0: margin 4 >= 4 (no float drift: 1.1*c1 terms cancel)."""
    pair = select_pair(judged((0, 4, 0), (0, 0, 0)), min_margin=4.0)
    assert pair.margin == 4 and pair.kept


def test_ties_lowest_index_chosen_highest_index_rejected():
    """Totals: 0 -> 13.5, 1 -> 4.1, 2 -> 13.5, 3 -> 4.1. Chosen among the 13.5s: index 0 (lowest);
    rejected among the 4.1s: index 3 (highest)."""
    pair = select_pair(judged((5, 5, 3), (1, 2, 1), (5, 5, 3), (1, 2, 1)), min_margin=4.0)
    assert (pair.chosen_index, pair.rejected_index) == (0, 3)


def test_all_equal_gives_distinct_candidates_with_zero_margin():
    pair = select_pair(judged((3, 3, 3), (3, 3, 3), (3, 3, 3)), min_margin=0.0)
    assert (pair.chosen_index, pair.rejected_index, pair.margin, pair.kept) == (0, 2, 0.0, True)


def test_failed_candidates_are_excluded():
    """Index 1 would be the best (13.5) and index 2 the worst (0) but each has a failed criterion.
    Among the rest: 0 -> 10.4, 3 -> 1.1*1+1+1 = 3.1: chosen 0, rejected 3, margin 7.3."""
    pair = select_pair(judged((4, 4, 2), (5, 5, None), (None, 0, 0), (1, 1, 1)), min_margin=4.0)
    assert (pair.chosen_index, pair.rejected_index, pair.margin, pair.kept) == (0, 3, 7.3, True)


def test_fewer_than_two_judged_candidates_means_no_pair():
    pair = select_pair(judged((5, 5, 3), (None, 1, 1), (2, 2, None)), min_margin=4.0)
    assert not pair.kept and pair.chosen_index is None and pair.rejected_index is None
    assert pair.reason == "fewer than two judged candidates (1 of 3)"
