"""The judge's three prompts (our own words for the content of the paper's App. D.1) and their version.

- C1 *factuality* (0-5), one call per candidate: the candidate is "Caption 1", the clip captions
  are "Caption 2..N" in clip order; they may be slightly wrong, so small deviations are tolerated;
  entities or actions that contradict them (hallucinations) cost points.
  Reply ``{"reasoning": str, "score": int}``.
- C2 *instruction fidelity, fluency, objectivity* (0-5), one call per candidate, the generation
  prompt shown to the judge. Reply ``{"reasoning": str, "score": int}``.
- C3 *self-consistency* (0-3), one call per video with every candidate; captions close to the
  others score higher, outliers lower. Reply ``{"reasoning": str, "the score of caption i": int, ...}``.

Placeholders are ``{name}`` and are filled in one pass (:func:`fill`), so text inside a caption is
never substituted again. :data:`PROMPT_VERSION` is a short sha256 of every template, stored with each
score and in the cache key: editing a prompt changes it, and old cached scores no longer match.

The client names each criterion's answer schema (:data:`SCHEMA_NAMES`); the loopback test judge
(:mod:`synpo.testing`) reads the criterion from that name and the inputs back from these templates.
"""

from __future__ import annotations

import hashlib
import re

SCORE_RANGES: dict[str, tuple[int, int]] = {"c1": (0, 5), "c2": (0, 5), "c3": (0, 3)}

SYSTEM_PROMPT = "You are a careful assistant that rates captions of videos. You always answer with JSON only."

FACTUALITY_TEMPLATE = """Below are captions of one video, all written by a multimodal model. Caption 1 describes the whole video and is the caption you must rate. The captions after it describe consecutive segments of the same video, in order; use them as the reference for what really happens. The segment captions are not perfectly accurate either, so tolerate small deviations.
Rate Caption 1 with an integer from 0 to 5. What matters most is whether the entities (people, animals, objects, their colours and other attributes, places) or the actions in Caption 1 are inconsistent with the segment captions or absent from all of them, i.e. whether Caption 1 hallucinates. The more it hallucinates, the lower the score; 5 means nothing in it contradicts the reference.

Caption 1 (the caption to rate):
{candidate}

{references}

Answer with JSON only, in exactly this form:
{"reasoning": "<your reasoning>", "score": <an integer from 0 to 5>}"""

FACTUALITY_REFERENCE = "Caption {number} (reference, segment {segment} of {segments}):\n{caption}"

FIDELITY_TEMPLATE = """A multimodal model was shown a video with the instruction below and wrote the caption below. Rate the caption with an integer from 0 to 5, weighing three things together:
(a) does it do what the instruction asks for;
(b) is it natural, coherent and fluent, with wording that suits a video (a caption that speaks of "this image", "the picture" or "the photo" loses points);
(c) is it objective: subjective judgements such as "beautiful", "boring" or "I think" lose points, while objective inferences from what is shown are fine.

Instruction given to the model:
{prompt}

Caption to rate:
{candidate}

Answer with JSON only, in exactly this form:
{"reasoning": "<your reasoning>", "score": <an integer from 0 to 5>}"""

CONSISTENCY_TEMPLATE = """Below are {count} captions of the same video, all written by one multimodal model. Rate each caption by how well its meaning agrees with the other captions: a caption that says what most of the others say scores higher, a caption that differs markedly from the rest scores lower (a majority vote). Use integers from 0 to 3, 3 being the highest.

{captions}

Answer with JSON only, in exactly this form:
{answer_form}"""

CONSISTENCY_CAPTION = "The caption {number}:\n{caption}"

TEMPLATES = (
    SYSTEM_PROMPT,
    FACTUALITY_TEMPLATE,
    FACTUALITY_REFERENCE,
    FIDELITY_TEMPLATE,
    CONSISTENCY_TEMPLATE,
    CONSISTENCY_CAPTION,
)
PROMPT_VERSION = hashlib.sha256("\x00".join(TEMPLATES).encode("utf-8")).hexdigest()[:12]

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(template: str, **values: str) -> str:
    """Replace each ``{name}`` in ``template`` by ``values[name]`` in a single pass (unknown names stay)."""
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def consistency_key(number: int) -> str:
    """The reply key for caption ``number`` (1-based), worded as in the paper's prompt."""
    return f"the score of caption {number}"


def _messages(user_text: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_text}]


def factuality_messages(candidate: str, clip_captions: list[str]) -> list[dict]:
    """C1 chat messages: the candidate as Caption 1, the clip captions as Captions 2..N."""
    references = "\n\n".join(
        fill(FACTUALITY_REFERENCE, number=str(position + 2), segment=str(position + 1), segments=str(len(clip_captions)), caption=caption)
        for position, caption in enumerate(clip_captions)
    )
    return _messages(fill(FACTUALITY_TEMPLATE, candidate=candidate, references=references))


def fidelity_messages(prompt: str, candidate: str) -> list[dict]:
    """C2 chat messages: the generation prompt and one candidate."""
    return _messages(fill(FIDELITY_TEMPLATE, prompt=prompt, candidate=candidate))


def consistency_messages(candidates: list[str]) -> list[dict]:
    """C3 chat messages: every candidate of the video, numbered from 1."""
    captions = "\n\n".join(fill(CONSISTENCY_CAPTION, number=str(number), caption=text) for number, text in enumerate(candidates, 1))
    answer_form = (
        '{"reasoning": "<your reasoning>", '
        + ", ".join(f'"{consistency_key(number)}": <an integer from 0 to 3>' for number in range(1, len(candidates) + 1))
        + "}"
    )
    return _messages(fill(CONSISTENCY_TEMPLATE, count=str(len(candidates)), captions=captions, answer_form=answer_form))


def answer_schema(criterion: str, num_candidates: int = 0, max_reasoning_chars: int | None = None) -> dict:
    """The JSON schema of the reply to ``criterion`` (for ``response_format``); C3 needs the candidate count.

    ``max_reasoning_chars`` becomes the reasoning string's ``maxLength``: with constrained decoding
    the server then closes the string there and the scores always follow (None: no bound).
    """
    low, high = SCORE_RANGES[criterion]
    score = {"type": "integer", "enum": list(range(low, high + 1))}
    reasoning = {"type": "string"} if max_reasoning_chars is None else {"type": "string", "maxLength": max_reasoning_chars}
    if criterion == "c3":
        score_keys = [consistency_key(number) for number in range(1, num_candidates + 1)]
        properties = {"reasoning": reasoning, **{key: score for key in score_keys}}
        required = ["reasoning", *score_keys]
    else:
        properties = {"reasoning": reasoning, "score": score}
        required = ["reasoning", "score"]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


SCHEMA_NAMES = {"c1": "caption_factuality", "c2": "caption_instruction_fidelity", "c3": "caption_self_consistency"}
