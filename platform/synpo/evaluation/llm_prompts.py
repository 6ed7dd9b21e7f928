"""The evaluation judge's prompts, answer schemas and reply parsers (our own words for the benchmarks' protocols).

Four calls, each answered with JSON:

- ``detail`` (VDD-style, Video-ChatGPT's detail orientation): the reference caption(s) and the caption
  under test; how completely and specifically the caption covers what the references describe, 0-5.
  Reply ``{"reasoning": str, "score": int}``.
- ``qa_questions`` (VDC-style, step 1): up to K short questions whose answers the reference states,
  each with that answer. It depends on the references only, so every model evaluated on the set is
  asked the same questions (the judge cache keeps them). Reply ``{"questions": [{"question", "answer"}]}``.
- ``qa_answers`` (step 2): the questions answered from the caption under test alone, "not mentioned"
  where it says nothing. Reply ``{"answers": [str, ...]}`` (one per question, in order).
- ``qa_judgements`` (step 3): each predicted answer against the reference answer: correct or not, and
  a 0-5 score. Reply ``{"judgements": [{"correct": bool, "score": int}, ...]}``.

List inputs are given as JSON, so a caption's own line breaks cannot blur where one item ends. Each
template is filled in one pass by :func:`synpo.judging.prompts.fill`; :data:`EVAL_PROMPT_VERSION`
hashes them all and is part of every cache key and of the evaluation's identity.
"""

from __future__ import annotations

import hashlib
import json

from synpo.judging.parse import MalformedAnswer, json_objects
from synpo.judging.prompts import SYSTEM_PROMPT, fill

NOT_MENTIONED = "not mentioned"

DETAIL_TEMPLATE = """Below are one or more reference descriptions of a video, written by people who watched it, and a caption of the same video written by a model. Rate how detailed and complete the caption is with an integer from 0 to 5: does it cover the entities, their attributes, the actions, the setting and the order of events the references describe, and is it specific rather than vague? Details that contradict the references do not count as coverage. 0 means it covers nothing of the references, 5 means it covers everything they describe, specifically.

Reference descriptions (JSON list):
{references}

Caption to rate:
{caption}

Answer with JSON only, in exactly this form:
{"reasoning": "<your reasoning>", "score": <an integer from 0 to 5>}"""

QUESTIONS_TEMPLATE = """Below are one or more reference descriptions of a video. Write at most {count} short questions about the video whose answers the references state clearly (about the main objects, their attributes, the actions and their order, the background, the camera), each with that answer in a few words. Ask about different facts; do not ask anything the references leave open.

Reference descriptions (JSON list):
{references}

Answer with JSON only, in exactly this form:
{"questions": [{"question": "<question>", "answer": "<short answer>"}, ...]}"""

ANSWERS_TEMPLATE = """Below is a caption of a video and a list of questions about the video. Answer each question using only what the caption says, in a few words. If the caption does not say, answer "not mentioned". Do not guess.

Caption:
{caption}

Questions (JSON list):
{questions}

Answer with JSON only, in exactly this form, one answer per question, in order:
{"answers": ["<answer to question 1>", ...]}"""

JUDGEMENTS_TEMPLATE = """Below are questions about a video, each with the correct answer and a predicted answer. For each question, say whether the predicted answer is correct (it means the same as the correct answer; "not mentioned" is never correct) and rate it with an integer from 0 to 5 (5: fully correct and specific, 0: wrong or missing).

Questions with the correct and the predicted answers (JSON list):
{items}

Answer with JSON only, in exactly this form, one judgement per question, in order:
{"judgements": [{"correct": <true or false>, "score": <an integer from 0 to 5>}, ...]}"""

TEMPLATES = {
    "detail": DETAIL_TEMPLATE,
    "qa_questions": QUESTIONS_TEMPLATE,
    "qa_answers": ANSWERS_TEMPLATE,
    "qa_judgements": JUDGEMENTS_TEMPLATE,
}
SCHEMA_NAMES = {
    "detail": "eval_caption_detail",
    "qa_questions": "eval_qa_questions",
    "qa_answers": "eval_qa_answers",
    "qa_judgements": "eval_qa_judgements",
}
EVAL_PROMPT_VERSION = hashlib.sha256(
    "\x00".join((SYSTEM_PROMPT, *TEMPLATES.values())).encode("utf-8")
).hexdigest()[:12]


def _messages(user_text: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_text}]


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)


def detail_messages(references: list[str], caption: str) -> list[dict]:
    return _messages(fill(DETAIL_TEMPLATE, references=_json(references), caption=caption))


def questions_messages(references: list[str], count: int) -> list[dict]:
    return _messages(fill(QUESTIONS_TEMPLATE, references=_json(references), count=str(count)))


def answers_messages(caption: str, questions: list[str]) -> list[dict]:
    return _messages(fill(ANSWERS_TEMPLATE, caption=caption, questions=_json(questions)))


def judgements_messages(questions: list[dict], predicted: list[str]) -> list[dict]:
    items = [
        {"question": item["question"], "correct_answer": item["answer"], "predicted_answer": answer}
        for item, answer in zip(questions, predicted, strict=True)
    ]
    return _messages(fill(JUDGEMENTS_TEMPLATE, items=_json(items)))


# ---- answer schemas (sent as the json_schema response format) ----

_TEXT = {"type": "string", "minLength": 1, "maxLength": 300}
_SCORE = {"type": "integer", "enum": [0, 1, 2, 3, 4, 5]}


def _array(items: dict, low: int, high: int) -> dict:
    return {"type": "array", "items": items, "minItems": low, "maxItems": high}


def _object(properties: dict) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def detail_schema(max_reasoning_chars: int | None) -> dict:
    reasoning = (
        {"type": "string"}
        if max_reasoning_chars is None
        else {"type": "string", "maxLength": max_reasoning_chars}
    )
    return _object({"reasoning": reasoning, "score": _SCORE})


def questions_schema(count: int) -> dict:
    return _object({"questions": _array(_object({"question": _TEXT, "answer": _TEXT}), 1, count)})


def answers_schema(count: int) -> dict:
    return _object({"answers": _array({"type": "string", "maxLength": 300}, count, count)})


def judgements_schema(count: int) -> dict:
    return _object(
        {"judgements": _array(_object({"correct": {"type": "boolean"}, "score": _SCORE}), count, count)}
    )


# ---- reply parsers: the first JSON object of the reply that is valid, else MalformedAnswer ----


def _first_valid(text: str, read):  # noqa: ANN001, ANN202 - read: dict -> answer, raising MalformedAnswer
    first_problem: MalformedAnswer | None = None
    for data in json_objects(text):
        try:
            return read(data)
        except MalformedAnswer as problem:
            first_problem = first_problem or problem
    raise first_problem or MalformedAnswer(f"no JSON object in the reply {text[:120]!r}")


def _score(value: object, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 5:
        raise MalformedAnswer(f"{label} is {value!r}, not an integer from 0 to 5")
    return value


def _list(data: dict, key: str, count: tuple[int, int]) -> list:
    value = data.get(key)
    if not isinstance(value, list):
        raise MalformedAnswer(f"no '{key}' list (keys: {', '.join(map(str, data)) or 'none'})")
    low, high = count
    if not low <= len(value) <= high:
        raise MalformedAnswer(
            f"'{key}' has {len(value)} item(s), expected {low if low == high else f'{low} to {high}'}"
        )
    return value


def parse_detail(text: str) -> int:
    return _first_valid(text, lambda data: _score(data.get("score"), "score"))


def parse_questions(text: str, count: int) -> list[dict]:
    """``[{"question", "answer"}, ...]``: 1 to ``count`` questions, each with a non-empty answer."""

    def read(data: dict) -> list[dict]:
        items = _list(data, "questions", (1, count))
        if not all(
            isinstance(item, dict)
            and isinstance(item.get("question"), str)
            and isinstance(item.get("answer"), str)
            for item in items
        ):
            raise MalformedAnswer("every question must be an object with 'question' and 'answer' strings")
        if not all(item["question"].strip() and item["answer"].strip() for item in items):
            raise MalformedAnswer("a question or an answer is empty")
        return [{"question": item["question"].strip(), "answer": item["answer"].strip()} for item in items]

    return _first_valid(text, read)


def parse_answers(text: str, count: int) -> list[str]:
    def read(data: dict) -> list[str]:
        answers = _list(data, "answers", (count, count))
        if not all(isinstance(answer, str) for answer in answers):
            raise MalformedAnswer("every answer must be a string")
        return [answer.strip() or NOT_MENTIONED for answer in answers]

    return _first_valid(text, read)


def parse_judgements(text: str, count: int) -> list[tuple[bool, int]]:
    def read(data: dict) -> list[tuple[bool, int]]:
        items = _list(data, "judgements", (count, count))
        if not all(isinstance(item, dict) and isinstance(item.get("correct"), bool) for item in items):
            raise MalformedAnswer("every judgement must be an object with a boolean 'correct'")
        return [
            (item["correct"], _score(item.get("score"), f"the score of judgement {number}"))
            for number, item in enumerate(items, 1)
        ]

    return _first_valid(text, read)
