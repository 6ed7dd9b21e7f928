"""A model's stock processor inputs for one video prompt: what the engines' and training's own paths are checked against."""

from __future__ import annotations

import torch

from synpo.sampling.prompts import chat_messages


def stock_inputs(processor, instruction: str, frames, metadata: dict | None, continuation: list[int]) -> dict:
    """The family's stock processor inputs for one prompt showing ``frames`` (with their metadata, if given), plus
    ``continuation`` tokens: pixels through the model's own forward, not the shared features of our paths."""
    text = processor.apply_chat_template(chat_messages(instruction, True), tokenize=False, add_generation_prompt=True)
    timed = {} if metadata is None else {"video_metadata": [metadata]}
    inputs = dict(processor(text=[text], videos=[list(frames)], do_sample_frames=False, return_tensors="pt", **timed))
    extra = torch.tensor([continuation], dtype=torch.long)
    inputs["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    if "mm_token_type_ids" in inputs:
        inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(extra)], dim=1)
    if "second_per_grid_ts" in inputs:
        inputs["second_per_grid_ts"] = torch.as_tensor(inputs["second_per_grid_ts"])
    return inputs
