"""Read a judge request the way the loopback judge needs it: which criterion, and the inputs to judge.

The **criterion** comes from the request body's ``response_format.json_schema.name``, the name the
client gives each criterion's answer schema (:data:`synpo.judging.prompts.SCHEMA_NAMES`). A request
without a schema (``response_format`` ``json_object`` or absent, as the client sends when configured
with ``response_format: json_object`` or ``none``) is recognised by its layout instead: the criterion
whose prompt template the user message matches.

The **inputs** (``candidate`` and ``clip_captions`` for C1, ``prompt`` and ``candidate`` for C2,
``candidates`` for C3) are recovered by inverting the production templates of
:mod:`synpo.judging.prompts`: each template's text is matched literally and each ``{placeholder}``
becomes a capture, so the patterns follow any edit of the prompts and the prompts need no marker of
their own for this. The one thing the inversion relies on is what a real judge also needs: the
sections a prompt already has (the candidate, the numbered reference captions, the instruction) stay
delimited by their headings. A caption that itself contains such a heading can be misread; our
test captions do not.
"""

from __future__ import annotations

import json
import re

from synpo.evaluation import llm_prompts as eval_prompts
from synpo.judging.prompts import (
    CONSISTENCY_CAPTION,
    CONSISTENCY_TEMPLATE,
    FACTUALITY_REFERENCE,
    FACTUALITY_TEMPLATE,
    FIDELITY_TEMPLATE,
    SCHEMA_NAMES,
)

CRITERIA_BY_SCHEMA_NAME = {name: criterion for criterion, name in {**SCHEMA_NAMES, **eval_prompts.SCHEMA_NAMES}.items()}

_PLACEHOLDER = re.compile(r"\{(\w+)\}")  # the placeholder syntax of synpo.judging.prompts.fill
_NUMBER = r"\d+"
_TEXT = r".*?"


def template_pattern(template: str, fields: dict[str, str]) -> str:
    """``template`` as a regex: its text matched literally, each ``{name}`` replaced by ``fields[name]``."""
    pieces = _PLACEHOLDER.split(template)  # text, name, text, name, ..., text
    return "".join(re.escape(piece) if position % 2 == 0 else fields[piece] for position, piece in enumerate(pieces))


def _one_or_more(block: str) -> str:
    return f"{block}(?:\n\n{block})*"


_REFERENCE_FIELDS = {"number": _NUMBER, "segment": _NUMBER, "segments": _NUMBER}
_REFERENCE = template_pattern(FACTUALITY_REFERENCE, {**_REFERENCE_FIELDS, "caption": _TEXT})
_REFERENCE_HEADING = re.compile("(?:^|\n\n)" + template_pattern(FACTUALITY_REFERENCE.split("{caption}")[0], _REFERENCE_FIELDS))
_CAPTION = template_pattern(CONSISTENCY_CAPTION, {"number": _NUMBER, "caption": _TEXT})
_CAPTION_HEADING = re.compile("(?:^|\n\n)" + template_pattern(CONSISTENCY_CAPTION.split("{caption}")[0], {"number": _NUMBER}))

USER_MESSAGE_PATTERNS = {
    "c1": re.compile(
        template_pattern(
            FACTUALITY_TEMPLATE, {"candidate": f"(?P<candidate>{_TEXT})", "references": f"(?P<references>{_one_or_more(_REFERENCE)})"}
        ),
        re.DOTALL,
    ),
    "c2": re.compile(template_pattern(FIDELITY_TEMPLATE, {"prompt": f"(?P<prompt>{_TEXT})", "candidate": f"(?P<candidate>{_TEXT})"}), re.DOTALL),
    "c3": re.compile(
        template_pattern(
            CONSISTENCY_TEMPLATE,
            {"count": f"(?P<count>{_NUMBER})", "captions": f"(?P<captions>{_one_or_more(_CAPTION)})", "answer_form": _TEXT},
        ),
        re.DOTALL,
    ),
}


# The evaluation judge's calls (synpo.evaluation.llm_prompts) give list inputs as JSON: read back with json.loads.
_JSON_FIELDS = ("references", "questions", "items")


_JSON_LIST = r"\[.*?\]"


def _eval_field(name: str) -> str:
    return f"(?P<{name}>{_NUMBER if name == 'count' else _JSON_LIST if name in _JSON_FIELDS else _TEXT})"


EVAL_MESSAGE_PATTERNS = {
    task: re.compile(template_pattern(template, {name: _eval_field(name) for name in _PLACEHOLDER.findall(template)}), re.DOTALL)
    for task, template in eval_prompts.TEMPLATES.items()
}


def _eval_inputs(match: re.Match) -> dict:
    return {name: int(value) if name == "count" else json.loads(value) if name in _JSON_FIELDS else value for name, value in match.groupdict().items()}


def request_criterion(body: dict) -> str | None:
    """The criterion named by the body's JSON-schema response format; ``None`` when the body has no schema.

    Raises ``ValueError`` for a schema name the client never sends.
    """
    response_format = body.get("response_format") or {}
    if response_format.get("type") != "json_schema":
        return None
    name = response_format["json_schema"]["name"]
    if name not in CRITERIA_BY_SCHEMA_NAME:
        raise ValueError(f"not a judge prompt: unknown response schema {name!r} (known: {sorted(CRITERIA_BY_SCHEMA_NAME)})")
    return CRITERIA_BY_SCHEMA_NAME[name]


def parse_user_message(text: str, criterion: str | None = None) -> tuple[str, dict]:
    """Recover ``(criterion, inputs)`` from a user message built by :mod:`synpo.judging.prompts`.

    With ``criterion`` (from :func:`request_criterion`) the text must have that criterion's layout;
    without it, the criterion is the one whose layout the text has. ``inputs`` is
    ``{"candidate", "clip_captions"}`` for C1, ``{"prompt", "candidate"}`` for C2 and
    ``{"candidates"}`` for C3. Raises ``ValueError`` for text that is not such a message.
    """
    for name in [criterion] if criterion is not None else [*USER_MESSAGE_PATTERNS, *EVAL_MESSAGE_PATTERNS]:
        if name in EVAL_MESSAGE_PATTERNS:
            match = EVAL_MESSAGE_PATTERNS[name].fullmatch(text)
            if match is not None:
                return name, _eval_inputs(match)
            continue
        match = USER_MESSAGE_PATTERNS[name].fullmatch(text)
        if match is None:
            continue
        if name == "c1":
            return name, {"candidate": match["candidate"], "clip_captions": _REFERENCE_HEADING.split(match["references"])[1:]}
        if name == "c2":
            return name, {"prompt": match["prompt"], "candidate": match["candidate"]}
        candidates = _CAPTION_HEADING.split(match["captions"])[1:]
        if len(candidates) == int(match["count"]):
            return name, {"candidates": candidates}
    expected = f"a {criterion} judge prompt" if criterion is not None else "a judge prompt"
    raise ValueError(f"not {expected} (the layout of synpo.judging.prompts): {text[:80]!r}")
