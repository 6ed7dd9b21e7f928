"""The judge's prompts, checked against text written out here, never against the templates they come from.

Each expected message below is the literal text a judge receives: a template edited by mistake (a
criterion's range, the caption numbering, the answer form, a lost sentence) fails here, while a test
that builds its expectation from ``synpo.judging.prompts`` or parses with patterns derived from it
would follow the edit. Changing a prompt on purpose means changing these texts too (and
``PROMPT_VERSION`` changes with it).
"""

from __future__ import annotations

import pytest

from synpo.judging.prompts import PROMPT_VERSION, consistency_messages, factuality_messages, fidelity_messages
from synpo.testing.judge_requests import parse_user_message

SYSTEM = {"role": "system", "content": "You are a careful assistant that rates captions of videos. You always answer with JSON only."}

# C1: the candidate is Caption 1, the clip captions Captions 2..4 ("segment i of 3"), an empty one kept in place.
CANDIDATE = "A red circle moves left.\n\nIt stops."
CLIP_CAPTIONS = ["A red circle.", "", "It stops."]
FACTUALITY_TEXT = """Below are captions of one video, all written by a multimodal model. Caption 1 describes the whole video and is the caption you must rate. The captions after it describe consecutive segments of the same video, in order; use them as the reference for what really happens. The segment captions are not perfectly accurate either, so tolerate small deviations.
Rate Caption 1 with an integer from 0 to 5. What matters most is whether the entities (people, animals, objects, their colours and other attributes, places) or the actions in Caption 1 are inconsistent with the segment captions or absent from all of them, i.e. whether Caption 1 hallucinates. The more it hallucinates, the lower the score; 5 means nothing in it contradicts the reference.

Caption 1 (the caption to rate):
A red circle moves left.

It stops.

Caption 2 (reference, segment 1 of 3):
A red circle.

Caption 3 (reference, segment 2 of 3):


Caption 4 (reference, segment 3 of 3):
It stops.

Answer with JSON only, in exactly this form:
{"reasoning": "<your reasoning>", "score": <an integer from 0 to 5>}"""

# C2: the generation prompt is shown to the judge.
FIDELITY_TEXT = """A multimodal model was shown a video with the instruction below and wrote the caption below. Rate the caption with an integer from 0 to 5, weighing three things together:
(a) does it do what the instruction asks for;
(b) is it natural, coherent and fluent, with wording that suits a video (a caption that speaks of "this image", "the picture" or "the photo" loses points);
(c) is it objective: subjective judgements such as "beautiful", "boring" or "I think" lose points, while objective inferences from what is shown are fine.

Instruction given to the model:
Describe the video.

Caption to rate:
A red circle moves left.

It stops.

Answer with JSON only, in exactly this form:
{"reasoning": "<your reasoning>", "score": <an integer from 0 to 5>}"""

# C3: every candidate in one message, numbered from 1, one reply key per candidate worded as in the paper, range 0..3.
CANDIDATES = ["a red circle", "a blue square", "a red circle"]
CONSISTENCY_TEXT = """Below are 3 captions of the same video, all written by one multimodal model. Rate each caption by how well its meaning agrees with the other captions: a caption that says what most of the others say scores higher, a caption that differs markedly from the rest scores lower (a majority vote). Use integers from 0 to 3, 3 being the highest.

The caption 1:
a red circle

The caption 2:
a blue square

The caption 3:
a red circle

Answer with JSON only, in exactly this form:
{"reasoning": "<your reasoning>", "the score of caption 1": <an integer from 0 to 3>, "the score of caption 2": <an integer from 0 to 3>, "the score of caption 3": <an integer from 0 to 3>}"""


def test_factuality_message_is_the_written_text():
    assert factuality_messages(CANDIDATE, CLIP_CAPTIONS) == [SYSTEM, {"role": "user", "content": FACTUALITY_TEXT}]


def test_fidelity_message_is_the_written_text():
    assert fidelity_messages("Describe the video.", CANDIDATE) == [SYSTEM, {"role": "user", "content": FIDELITY_TEXT}]


def test_consistency_message_is_the_written_text():
    assert consistency_messages(CANDIDATES) == [SYSTEM, {"role": "user", "content": CONSISTENCY_TEXT}]


def test_placeholders_inside_captions_are_not_filled_again():
    """Filling is one pass: a caption that happens to contain ``{references}`` or ``{prompt}`` reaches the judge verbatim."""
    text = fidelity_messages("Say {candidate}.", "It reads {prompt} and {references}.")[-1]["content"]
    assert "Instruction given to the model:\nSay {candidate}.\n\nCaption to rate:\nIt reads {prompt} and {references}.\n\n" in text
    text = factuality_messages("{references}", ["{candidate}"])[-1]["content"]
    assert "Caption 1 (the caption to rate):\n{references}\n\nCaption 2 (reference, segment 1 of 1):\n{candidate}\n\nAnswer with JSON" in text


@pytest.mark.parametrize(
    ("text", "criterion", "inputs"),
    [
        (FACTUALITY_TEXT, "c1", {"candidate": CANDIDATE, "clip_captions": CLIP_CAPTIONS}),
        (FIDELITY_TEXT, "c2", {"prompt": "Describe the video.", "candidate": CANDIDATE}),
        (CONSISTENCY_TEXT, "c3", {"candidates": CANDIDATES}),
    ],
)
def test_loopback_parser_reads_the_written_text(text, criterion, inputs):
    """The loopback judge's parser recovers the inputs from the literal messages above, with and without the schema's criterion."""
    assert parse_user_message(text) == (criterion, inputs)
    assert parse_user_message(text, criterion) == (criterion, inputs)


def test_prompt_version_is_a_short_hex_digest():
    assert len(PROMPT_VERSION) == 12 and int(PROMPT_VERSION, 16) >= 0
