"""Default prompts for captioning and self-retrospective refinement (our own words, per METHOD.md §1).

- ``CAPTION_PROMPT``: the base instruction for whole-video candidates (subject matter, setting,
  activities over time).
- ``CLIP_PROMPT``: the instruction for one clip of the clip split; it also asks the model not to
  state anything it is unsure about, because clip captions become the judge's reference set.
- ``REFINE_TEMPLATE``: the second pass of retrospection. It shows the model its previous
  description, warns that it may hold irrelevant or wrong words and need not be kept whole, and
  asks for a coherent, more accurate and more detailed description with more temporal information.
  ``{previous}`` is replaced by the first pass's text and ``{prompt}`` by the original instruction.
"""

from __future__ import annotations

CAPTION_PROMPT = (
    "Describe this video in detail: the subject matter, the setting, "
    "and what happens over time, in order."
)

CLIP_PROMPT = "Describe the video clip in detail. Do not state anything you are not sure about."

REFINE_TEMPLATE = (
    "{prompt}\n"
    "Here is a previous description of the video. It may contain irrelevant or wrong words and need not "
    "be kept whole. Write an improved description that is coherent, more accurate and more detailed, "
    "with more temporal information: the activities, the scene changes and their order.\n"
    "Previous description: {previous}\n"
    "Improved description:"
)


def refine_prompt(template: str, prompt: str, previous: str) -> str:
    """The retrospective pass's instruction: ``template`` with the original prompt and previous text filled in."""
    return template.replace("{prompt}", prompt).replace("{previous}", previous)


def chat_messages(instruction: str, with_video: bool) -> list[dict]:
    """One user turn: the video (when there is one) then the instruction, in the HF chat-template format."""
    content: list[dict] = [{"type": "video"}] if with_video else []
    content.append({"type": "text", "text": instruction})
    return [{"role": "user", "content": content}]
