"""Deterministic answers to the evaluation judge's calls, for the loopback judge server (tests, demo, dry runs).

A stand-in for an LLM that is simple enough to predict by hand, so tests can check the evaluation's
arithmetic end to end through real HTTP:

- ``detail``: 5 x the share of the references' content words the caption contains, rounded;
- ``qa_questions``: one question per sentence of the first reference (up to ``count``),
  "Does the video show this: <sentence>", answered "yes";
- ``qa_answers``: "yes" when the caption contains at least 80 % of the sentence's content words,
  else "not mentioned";
- ``qa_judgements``: correct when the predicted answer equals the correct one (case-insensitive):
  (true, 5), else (false, 0).
"""

from __future__ import annotations

import re

QUESTION_PREFIX = "Does the video show this: "
STOP_WORDS = frozenset("a an the and or of in on at to from is are was were it its this that with as by for then".split())
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def content_words(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in STOP_WORDS}


def detail_score(references: list[str], caption: str) -> int:
    wanted = set().union(*(content_words(reference) for reference in references))
    return round(5 * len(wanted & content_words(caption)) / len(wanted)) if wanted else 0


def questions(references: list[str], count: int) -> list[dict]:
    sentences = [sentence.strip() for sentence in _SENTENCE.split(references[0].strip()) if sentence.strip()]
    return [{"question": QUESTION_PREFIX + sentence, "answer": "yes"} for sentence in sentences[:count]]


def answer(caption: str, question: str) -> str:
    stated = content_words(question.removeprefix(QUESTION_PREFIX))
    return "yes" if stated and len(stated & content_words(caption)) >= 0.8 * len(stated) else "not mentioned"


def reply(task: str, inputs: dict) -> dict:
    """The JSON reply to one evaluation call, from the inputs read back out of its prompt."""
    if task == "detail":
        score = detail_score(inputs["references"], inputs["caption"])
        return {"reasoning": f"covers {score}/5 of the references' content words", "score": score}
    if task == "qa_questions":
        return {"questions": questions(inputs["references"], inputs["count"])}
    if task == "qa_answers":
        return {"answers": [answer(inputs["caption"], question) for question in inputs["questions"]]}
    same = [item["predicted_answer"].strip().lower() == item["correct_answer"].strip().lower() for item in inputs["items"]]
    return {"judgements": [{"correct": correct, "score": 5 if correct else 0} for correct in same]}
