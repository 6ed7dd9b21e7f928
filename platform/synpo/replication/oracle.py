"""The oracle judge: rank a video's candidates by their fact accuracy against the toy world's ground truth.

An honest upper bound on judging, which separates the judge's quality from the objective's: the
same candidates the pair job sampled (its ``audit/`` table) are judged a second time, by truth.

    score(c)  = fact F1 of c against the scene's facts = 2·P·R / (P + R)       (0 when c states nothing true)
    chosen    = argmax score,  rejected = argmin score   (the pair job's selection rule, ties by position)
    kept      = score(chosen) − score(rejected) ≥ min_margin

P and R are :func:`synpo.toy.facts.fact_accuracy`'s fact precision and recall. The true caption has
F1 = 1; a caption with one fact altered (a wrong colour, the opposite direction, an invented object)
states a false fact, so its precision, hence its F1, is below 1: the oracle always prefers the truth.
"""

from __future__ import annotations

import json

from synpo.judging.aggregate import select_pair
from synpo.judging.results import CandidateJudgement, PairSelection
from synpo.pairs.pairgen_output import read_audit, read_videos
from synpo.storage import Storage, join_uri
from synpo.toy.facts import Fact, fact_accuracy, scene_facts
from synpo.toy.world import Scene

ORACLE_JUDGE = "oracle:fact-f1"


def fact_f1(caption: str, truth: set[Fact]) -> float:
    """Harmonic mean of ``caption``'s fact precision and recall against ``truth`` (0 if it states no true fact)."""
    score = fact_accuracy(caption, truth)
    precision, recall = score.precision() or 0.0, score.recall() or 0.0
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def oracle_selection(candidates: list[str], truth: set[Fact], min_margin: float) -> PairSelection:
    """The oracle's pair among ``candidates`` (scores rounded to 6 decimals, as the judge rounds totals)."""
    judged = [CandidateJudgement(index=index, text=text, total=round(fact_f1(text, truth), 6)) for index, text in enumerate(candidates)]
    return select_pair(judged, min_margin)


def toy_truth(video: str, storage: Storage) -> set[Fact]:
    """The facts of a toy video, read from the ground-truth JSON beside it (``<id>.json``, see ``synpo toy videos``)."""
    sidecar = video.rsplit(".", 1)[0] + ".json"
    if not storage.exists(sidecar):
        raise FileNotFoundError(f"{video}: no ground truth at {sidecar}; the oracle judge works on toy videos only (`synpo toy videos`)")
    return scene_facts(Scene.from_dict(json.loads(storage.read_text(sidecar))["scene"]))


def oracle_pairs(output: str, min_margin: float, storage: Storage) -> tuple[list[dict], dict[str, int]]:
    """Pairs (the pair schema) from a pair job's ``output`` folder judged again by the oracle, and how many videos
    kept a pair or were filtered.

    The oracle chooses among exactly the candidates the pair job's judge scored (one whose criterion
    failed has no total there and is left out here too), so the two pair sets differ by the judge alone.
    """
    audit = read_audit(join_uri(output, "audit"), storage)
    videos = read_videos(join_uri(output, "videos"), storage)
    pairs, counts = [], {"kept": 0, "filtered": 0}
    for video_id, rows in sorted(audit.items()):
        judged = [row for row in rows if row["total"] is not None]
        if len(judged) < 2:
            continue
        selection = oracle_selection([row["text"] for row in judged], toy_truth(judged[0]["video"], storage), min_margin)
        if not selection.kept:
            counts["filtered"] += 1
            continue
        counts["kept"] += 1
        video = videos[video_id]
        pairs.append(
            {
                "pair_id": f"{video_id}-oracle",
                "video": video["video"],
                "video_id": video_id,
                "prompt": video["prompt"],
                "chosen": selection.chosen_text,
                "rejected": selection.rejected_text,
                "chosen_score": selection.chosen_score,
                "rejected_score": selection.rejected_score,
                "source": "pipeline",
                "generator": video["generator"],
                "judge": ORACLE_JUDGE,
            }
        )
    return pairs, counts
