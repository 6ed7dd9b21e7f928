"""The offline rules judge: each signal moves its criterion, and on the toy world it ranks the truth first."""

from __future__ import annotations

import asyncio

from synpo.judging import Judge, JudgeConfig, JudgeInput
from synpo.judging.rules import content_terms, score_consistency, score_factuality, score_fidelity, stem
from synpo.toy.judge_check import toy_ranking_rates

PROMPT = "Describe this video in detail: the subject matter, the setting, and what happens over time, in order."
CLIPS = [
    "A man in a red jacket walks a brown dog along a sandy beach.",
    "The dog runs into the waves, then the man throws a stick and the dog brings it back.",
]
TRUE = "A man in a red jacket walks a brown dog on a sandy beach. Then the dog runs into the waves and brings back a stick the man throws."
HALLUCINATED = "A woman in a green coat rides a bicycle through a snowy park while children build a snowman near a frozen lake."


def test_stemming_and_content_terms():
    assert stem("moves") == stem("moving") == stem("moved") == stem("move")
    assert stem("cities") == "city" and stem("grass") == "grass" and stem("red") == "red"
    words, pairs = content_terms("The red circle moves left. Then it stops.")
    assert {"red", stem("circle"), stem("moves"), "left"} <= words and "the" not in words
    assert ("red", stem("circle")) in pairs and ("left", "stop") not in pairs  # pairs stay within a clause


def test_factuality_rewards_support_and_punishes_hallucination():
    true_score, why = score_factuality(TRUE, CLIPS)
    false_score, why_false = score_factuality(HALLUCINATED, CLIPS)
    assert true_score >= 4 and false_score == 0
    assert "not found: " in why_false and "bicycle" in why_false


def test_fidelity_deductions():
    clean, _ = score_fidelity(PROMPT, TRUE)
    assert clean == 5
    image, why = score_fidelity(PROMPT, "This image shows " + TRUE)
    assert image == 3 and "image wording" in why
    subjective, why = score_fidelity(PROMPT, TRUE + " It is a beautiful and amazing scene, I think.")
    assert subjective == 3 and "subjective terms" in why
    repeated, why = score_fidelity(PROMPT, "the dog runs on the beach then " * 6)
    assert repeated <= 3 and "repeats" in why
    short, why = score_fidelity(PROMPT, "A dog.")
    assert short <= 3 and "too short" in why
    untimed, why = score_fidelity(PROMPT, "A man in a red jacket walks a brown dog on a sandy beach with waves and a stick in his hand.")
    assert untimed == 4 and "temporal" in why


def test_consistency_marks_the_outlier_down():
    scores, why = score_consistency([TRUE, TRUE.replace("brown", "black"), TRUE.replace("red", "blue"), HALLUCINATED])
    assert scores[3] < min(scores[:3]) and "caption 4" in why
    assert score_consistency([TRUE])[0] == [3]


def test_rules_backend_goes_through_the_judge_with_no_calls():
    video = JudgeInput(video_id="beach", prompt=PROMPT, candidates=[TRUE, HALLUCINATED, "This image is beautiful."], clip_captions=CLIPS)
    verdict = asyncio.run(Judge(JudgeConfig(backend="rules")).judge_video(video))
    assert verdict.pair.chosen_index == 0 and verdict.pair.kept
    assert verdict.calls == verdict.cache_hits == verdict.prompt_tokens == 0 and verdict.judge_model == "rules-1"
    assert set(verdict.candidates[0].reasoning) == {"c1", "c2", "c3"}


def test_toy_world_truth_is_ranked_first_far_more_often_than_last():
    """60 toy scenes, 5 candidates each (the truth + 4 captions with one fact altered), in random order.
    Chance would put the truth first (and last) 20% of the time."""
    report = toy_ranking_rates(num_scenes=60, seed=0)
    print(f"rules judge on the toy world: top is true {report.top_is_true:.0%}, bottom is true {report.bottom_is_true:.0%}")
    assert report.top_is_true > report.bottom_is_true
    assert report.top_is_true >= 0.5 and report.bottom_is_true <= 0.1
