"""The reference-based metrics on toy-world captions: references against themselves score at the top,
shuffled references low, and bad inputs are clear errors."""

from __future__ import annotations

import pytest

from synpo.evaluation.text_metrics import METRICS, MetricError, caption_metrics
from synpo.toy.world import describe_scene, make_scene


@pytest.fixture(scope="module")
def references() -> dict[str, list[str]]:
    return {f"video-{seed}": [describe_scene(make_scene(seed))] for seed in range(12)}


@pytest.fixture(scope="module")
def scores(references):
    """Three runs in one METEOR start-up each: the references themselves, shuffled, and one word changed."""
    videos = sorted(references)
    shuffled = videos[1:] + videos[:1]
    runs = {
        "self": {video: references[video][0] for video in videos},
        "shuffled": {video: references[other][0] for video, other in zip(videos, shuffled, strict=True)},
    }
    return {name: caption_metrics(captions, references) for name, captions in runs.items()}


def test_references_against_themselves_score_at_the_top(scores):
    own = scores["self"]
    assert set(own.corpus) == set(METRICS)
    assert own.corpus["BLEU-4"] == pytest.approx(1.0) and own.corpus["ROUGE-L"] == pytest.approx(1.0)
    assert own.corpus["METEOR"] > 0.95
    assert all(video["BLEU-4"] == pytest.approx(1.0) for video in own.per_video.values())


def test_shuffled_references_score_far_lower_on_every_metric(scores):
    own, shuffled = scores["self"].corpus, scores["shuffled"].corpus
    for metric in METRICS:
        assert shuffled[metric] < 0.8 * own[metric], (metric, shuffled[metric], own[metric])
    assert shuffled["CIDEr"] < 0.5 * own["CIDEr"]


def test_one_altered_word_costs_a_little(references):
    """A single wrong colour keeps most n-grams: between the shuffled and the exact caption (no METEOR: one start-up is enough)."""
    captions = {video: texts[0].replace(" red ", " blue ", 1) if " red " in texts[0] else texts[0] + " Nothing else." for video, texts in references.items()}
    result = caption_metrics(captions, references, meteor=False)
    assert 0.5 < result.corpus["BLEU-4"] < 1.0 and "METEOR" not in result.corpus


def test_bad_inputs_are_clear_errors(references):
    with pytest.raises(MetricError, match="no captions"):
        caption_metrics({}, references)
    with pytest.raises(MetricError, match=r"1 video\(s\) have no reference caption, e.g. \['unknown'\]"):
        caption_metrics({"unknown": "a red circle"}, references)
    with pytest.raises(MetricError, match="no reference caption"):
        caption_metrics({"video-0": "a red circle"}, {"video-0": ["  "]})
