"""Captions of an eval set scored: reference metrics and, on toy-world sets, fact accuracy.

    report = score_captions(captions, videos, facts=True)
    report.metrics["CIDEr"], report.metrics["facts/precision"], report.per_video[0]["facts_hallucinated"]

Fact accuracy (``facts=True``: every reference is a toy-world ground-truth caption, which reads back
to exactly the scene's facts, see :mod:`synpo.toy.facts`) is micro-averaged over the set:

    facts/precision            true stated facts / stated facts
    facts/recall               true stated facts / true facts
    facts/hallucination_rate   captions stating at least one false fact / captions
    facts/<metric>/<kind>      the same per kind of fact (colour, motion, ...)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from synpo.evaluation.evalset import EvalVideo
from synpo.evaluation.llm_metrics import LlmScores
from synpo.evaluation.text_metrics import MetricError, caption_metrics
from synpo.toy.facts import KINDS, FactScore, caption_facts, fact_accuracy


@dataclass(frozen=True)
class EvalReport:
    metrics: dict[str, float]
    per_video: list[dict]  # one row per video: id, caption, references, its scores


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def fact_metrics(scores: list[FactScore]) -> dict[str, float]:
    """Micro-averaged fact precision and recall (overall and per kind) and the hallucination rate."""
    correct, hallucinated, missed = Counter(), Counter(), Counter()
    for score in scores:
        correct.update(score.correct)
        hallucinated.update(score.hallucinated)
        missed.update(score.missed)
    metrics = {
        "facts/precision": _ratio(sum(correct.values()), sum(correct.values()) + sum(hallucinated.values())),
        "facts/recall": _ratio(sum(correct.values()), sum(correct.values()) + sum(missed.values())),
        "facts/hallucination_rate": _ratio(sum(1 for score in scores if score.hallucinated), len(scores)),
    }
    for kind in KINDS:
        metrics[f"facts/precision/{kind}"] = _ratio(correct[kind], correct[kind] + hallucinated[kind])
        metrics[f"facts/recall/{kind}"] = _ratio(correct[kind], correct[kind] + missed[kind])
        metrics[f"facts/hallucination_rate/{kind}"] = _ratio(sum(1 for score in scores if score.hallucinated[kind]), len(scores))
    return metrics


def score_captions(captions: dict[str, str], videos: list[EvalVideo], facts: bool = False, meteor: bool = True) -> EvalReport:
    """Score one caption per video of ``videos``; ``facts`` adds toy-world fact accuracy against the first reference."""
    missing = [video.video_id for video in videos if video.video_id not in captions]
    if missing:
        raise MetricError(f"{len(missing)} video(s) of the eval set have no caption, e.g. {missing[:3]}")
    text = caption_metrics({video.video_id: captions[video.video_id] for video in videos}, {video.video_id: list(video.references) for video in videos}, meteor)
    metrics = dict(text.corpus)
    rows = [
        {"video_id": video.video_id, "video": video.video, "caption": captions[video.video_id], "references": list(video.references), **text.per_video[video.video_id]}
        for video in videos
    ]
    if facts:
        scores = []
        for video, row in zip(videos, rows, strict=True):
            truth = caption_facts(video.references[0])
            if truth.unread_sentences:
                raise MetricError(f"facts: the reference of {video.video_id!r} is not a toy-world caption (unread: {truth.unread_sentences[0]!r})")
            score = fact_accuracy(captions[video.video_id], truth.facts)
            scores.append(score)
            row.update(
                facts_precision=score.precision(), facts_recall=score.recall(),
                facts_hallucinated=sum(score.hallucinated.values()), facts_unread_sentences=score.unread_sentences,
            )  # fmt: skip
        metrics.update(fact_metrics(scores))
    return EvalReport(metrics=metrics, per_video=rows)


def with_llm_scores(report: EvalReport, scores: LlmScores) -> EvalReport:
    """``report`` with the LLM-judged corpus metrics and each video's LLM scores (and QA items) added."""
    rows = [{**row, **scores.per_video[row["video_id"]]} for row in report.per_video]
    return EvalReport(metrics={**report.metrics, **scores.metrics}, per_video=rows)
