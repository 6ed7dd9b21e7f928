"""Reply parsing: JSON wherever it sits in the text, the paper's key wording, strict integer ranges."""

from __future__ import annotations

import re

import pytest

from synpo.judging.parse import MalformedAnswer, parse_answer


def test_bare_json():
    answer = parse_answer('{"reasoning": "matches the clips", "score": 4}', "c1")
    assert answer.scores == (4,) and answer.reasoning == "matches the clips"


def test_code_fence_and_prose_around_json():
    text = 'Sure! Here is my rating:\n```json\n{"reasoning": "fine", "score": 5}\n```\nLet me know.'
    assert parse_answer(text, "c2").scores == (5,)
    assert parse_answer('My verdict is {"score": 2, "reasoning": "two colours are wrong"} as asked.', "c1").scores == (2,)


def test_python_style_dict_with_single_quotes():
    """The paper's own prompt shows a single-quoted dict; models sometimes copy it."""
    assert parse_answer("{'reasoning': 'ok', 'score': 3}", "c1").scores == (3,)


def test_reasoning_is_optional_and_key_case_is_ignored():
    answer = parse_answer('{"Score": 1}', "c2")
    assert answer.scores == (1,) and answer.reasoning == ""


def test_consistency_keys_as_the_paper_words_them():
    text = '{"reasoning": "2 is an outlier", "the score of caption 1": 3, "the score of caption 2": 0, "the score of caption 3": 2}'
    assert parse_answer(text, "c3", num_candidates=3).scores == (3, 0, 2)


def test_consistency_key_variants():
    text = '{"Score of caption 2": 1, "score_for_caption_1": 3, "caption 3": 2}'
    assert parse_answer(text, "c3", num_candidates=3).scores == (3, 1, 2)


def test_first_valid_object_wins_over_an_earlier_invalid_one():
    text = 'Format: {"score": "an integer"}. Answer: {"reasoning": "r", "score": 4}'
    assert parse_answer(text, "c1").scores == (4,)


@pytest.mark.parametrize(
    ("text", "criterion", "count", "reason"),
    [
        ('{"score": 4.0}', "c1", 1, "score is 4.0, not an integer"),
        ('{"score": "4"}', "c1", 1, "score is '4', not an integer"),
        ('{"score": true}', "c2", 1, "score is True, not an integer"),
        ('{"score": 6}', "c1", 1, "score is 6, outside 0..5"),
        ('{"score": -1}', "c2", 1, "score is -1, outside 0..5"),
        ('{"reasoning": "no score"}', "c1", 1, "no 'score' key"),
        ('{"the score of caption 1": 3}', "c3", 2, "no score for caption(s) 2 of 2"),
        ('{"the score of caption 1": 4, "the score of caption 2": 1}', "c3", 2, "the score of caption 1 is 4, outside 0..3"),
        ('{"caption 1": 1, "the score of caption 1": 2}', "c3", 1, "two scores for caption 1"),
        ("I would give it a four.", "c1", 1, "no JSON object in the reply"),
        ('{"score": 4', "c1", 1, "no JSON object in the reply"),
    ],
)
def test_unusable_replies_say_why(text, criterion, count, reason):
    with pytest.raises(MalformedAnswer, match=re.escape(reason)):
        parse_answer(text, criterion, count)
