"""Turn a judge's reply text into validated integer scores, or say exactly why it cannot be used.

Replies come in many shapes: bare JSON, JSON in a Markdown code fence, JSON with prose around it,
or a Python-style dict with single quotes (the paper's own prompt shows one). :func:`json_objects`
yields every JSON object it can find, in order; :func:`parse_answer` takes the first one that holds
valid scores for the criterion:

- C1/C2: key ``score`` (any case);
- C3: one key per caption, worded as in the paper (``"the score of caption 3"``); ``score of
  caption 3``, ``score_for_caption_3`` and ``caption 3`` are accepted too;
- every score must be a JSON integer (``4``; not ``4.0``, ``"4"`` or ``true``) inside the
  criterion's range (C1, C2: 0-5; C3: 0-3).

Anything else raises :class:`MalformedAnswer` with the reason; the client retries such a call and
then records the reason as the call's failure.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from synpo.judging.prompts import SCORE_RANGES

_FENCED = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)
_CAPTION_KEY = re.compile(r"^(?:the )?(?:score (?:of|for) )?caption (\d+)(?: score)?$")


class MalformedAnswer(ValueError):
    """A judge reply without usable scores; the message says what was wrong."""


@dataclass(frozen=True)
class JudgeAnswer:
    """Validated scores (one for C1/C2, one per candidate in order for C3) and the judge's reasoning."""

    scores: tuple[int, ...]
    reasoning: str

    def to_dict(self) -> dict:
        return {"scores": list(self.scores), "reasoning": self.reasoning}

    @classmethod
    def from_dict(cls, data: dict) -> JudgeAnswer:
        return cls(scores=tuple(data["scores"]), reasoning=data["reasoning"])


def json_objects(text: str) -> Iterator[dict]:
    """Every JSON object found in ``text``: fenced blocks first, then the text itself, then a Python-style dict."""
    decoder = json.JSONDecoder()
    sources = [block.strip() for block in _FENCED.findall(text)] + [text.strip()]
    for source in sources:
        start = source.find("{")
        while start != -1:
            try:
                value, _ = decoder.raw_decode(source, start)
            except json.JSONDecodeError:
                value = None
            if isinstance(value, dict):
                yield value
            start = source.find("{", start + 1)
    first, last = text.find("{"), text.rfind("}")
    if first != -1 and last > first:
        try:
            value = ast.literal_eval(text[first : last + 1])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
        if isinstance(value, dict):
            yield value


def _normalise_key(key: object) -> str:
    return " ".join(str(key).lower().replace("_", " ").replace("-", " ").strip(" :'\"").split())


def _checked_score(value: object, criterion: str, label: str) -> int:
    low, high = SCORE_RANGES[criterion]
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedAnswer(f"{label} is {value!r}, not an integer")
    if not low <= value <= high:
        raise MalformedAnswer(f"{label} is {value}, outside {low}..{high}")
    return value


def _reasoning(data: dict) -> str:
    for key, value in data.items():
        if _normalise_key(key) == "reasoning":
            return value if isinstance(value, str) else json.dumps(value)
    return ""


def answer_from_object(data: dict, criterion: str, num_candidates: int = 1) -> JudgeAnswer:
    """Validate one decoded object as the reply to ``criterion`` (C3: ``num_candidates`` scores)."""
    if criterion not in SCORE_RANGES:
        raise ValueError(f"unknown criterion {criterion!r}; expected one of {', '.join(SCORE_RANGES)}")
    if criterion != "c3":
        matches = [value for key, value in data.items() if _normalise_key(key) == "score"]
        if not matches:
            raise MalformedAnswer(f"no 'score' key (keys: {', '.join(map(str, data)) or 'none'})")
        return JudgeAnswer(scores=(_checked_score(matches[0], criterion, "score"),), reasoning=_reasoning(data))
    by_number: dict[int, object] = {}
    for key, value in data.items():
        match = _CAPTION_KEY.match(_normalise_key(key))
        if match:
            number = int(match.group(1))
            if number in by_number:
                raise MalformedAnswer(f"two scores for caption {number}")
            by_number[number] = value
    missing = [number for number in range(1, num_candidates + 1) if number not in by_number]
    if missing:
        raise MalformedAnswer(f"no score for caption(s) {', '.join(map(str, missing))} of {num_candidates}")
    scores = tuple(
        _checked_score(by_number[number], criterion, f"the score of caption {number}") for number in range(1, num_candidates + 1)
    )
    return JudgeAnswer(scores=scores, reasoning=_reasoning(data))


def parse_answer(text: str, criterion: str, num_candidates: int = 1) -> JudgeAnswer:
    """The first JSON object in ``text`` that is a valid reply to ``criterion``; else :class:`MalformedAnswer`."""
    first_problem: MalformedAnswer | None = None
    for data in json_objects(text):
        try:
            return answer_from_object(data, criterion, num_candidates)
        except MalformedAnswer as problem:
            first_problem = first_problem or problem
    if first_problem is not None:
        raise first_problem
    excerpt = text if len(text) <= 120 else text[:117] + "..."
    raise MalformedAnswer(f"no JSON object in the reply {excerpt!r}")
