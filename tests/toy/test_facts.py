"""Toy-world facts: read exactly from ground-truth captions, and each altered fact caught as a hallucination."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from synpo.toy.facts import KINDS, caption_facts, fact_accuracy, scene_facts
from synpo.toy.pairs import ALTERATIONS, alter_scene
from synpo.toy.world import describe_scene, make_scene

SCENES = [make_scene(seed) for seed in range(400)]


def test_ground_truth_captions_read_back_to_exactly_the_scene_facts():
    """Two independent paths (the Scene's fields; the parser over the caption) agree on 400 scenes."""
    kinds = Counter()
    for scene in SCENES:
        read = caption_facts(describe_scene(scene))
        assert read.unread_sentences == [], (scene.seed, read.unread_sentences)
        assert read.facts == scene_facts(scene), scene.seed
        score = fact_accuracy(describe_scene(scene), scene_facts(scene))
        assert score.precision() == score.recall() == 1.0 and not score.hallucinated and not score.missed
        kinds.update(fact[0] for fact in read.facts)
    assert set(kinds) == set(KINDS)  # every kind of fact occurs in these scenes


@pytest.mark.parametrize("alteration", ALTERATIONS)
def test_each_altered_fact_is_a_hallucination_of_its_kind_and_a_miss(alteration):
    rng = random.Random(1)
    for scene in SCENES[:100]:
        altered = alter_scene(scene, alteration, rng)
        score = fact_accuracy(describe_scene(altered), scene_facts(scene))
        changed = next(
            (new, old) for new, old in zip(altered.shapes, scene.shapes, strict=False) if new != old
        ) if alteration != "invented_object" else (altered.shapes[-1], None)
        new, old = changed
        if alteration == "colour":
            expected = Counter({"colour": 1, "colour_change": 1 if new.change_s is not None else 0})
            assert score.hallucinated == +expected and score.missed == +expected, scene.seed
        elif alteration == "direction":
            assert score.hallucinated == Counter({"motion": 1}) == score.missed, scene.seed
        else:  # an invented object: all its facts are false, nothing true is missed
            assert score.hallucinated == Counter({"shape": 1, "colour": 1, "size": 1, "motion": 1, "appearance": 1}), scene.seed
            assert not score.missed
        assert score.recall() < 1.0 or alteration == "invented_object"
        assert score.precision() < 1.0


def test_text_edits_a_model_might_make_are_read_strictly():
    scene = make_scene(7)
    truth = scene_facts(scene)
    caption = describe_scene(scene)
    first_shape = scene.shapes[0]
    wrong_size = caption.replace(f"a {first_shape.size} {first_shape.colour}", f"a {'small' if first_shape.size == 'large' else 'large'} {first_shape.colour}", 1)
    assert fact_accuracy(wrong_size, truth).hallucinated == Counter({"size": 1})
    truncated = caption[: caption.rindex(".", 0, len(caption) - 1) - 4]  # cut inside the second-to-last sentence
    read = caption_facts(truncated)
    assert read.unread_sentences and read.facts < truth
    invented = caption_facts("The circle dances happily. The video shows a large pink star on a plain black background.")
    assert invented.unread_sentences == ["The circle dances happily."]
    assert invented.facts == {
        ("shape", "star"), ("colour", "star", "pink"), ("size", "star", "large"), ("appearance", "star", "0"), ("background", "plain black"),
    }  # fmt: skip
    assert caption_facts("The video shows a red circle on a plain black background.").facts == set()  # no size: not read
    empty = fact_accuracy("", truth)
    assert empty.precision() is None and empty.recall() == 0.0 and sum(empty.missed.values()) == len(truth)
