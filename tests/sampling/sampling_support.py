"""Helpers shared by the engine tests."""

from __future__ import annotations

import torch

from synpo.sampling.hf_engine import HFEngine
from synpo.sampling.prompts import chat_messages


def reference_inputs(engine: HFEngine, instruction: str, frames, extra_tokens: list[int]) -> dict:
    """The processor's own inputs for one prompt + ``extra_tokens`` (pixels, not the engine's shared features)."""
    text = engine.processor.apply_chat_template(chat_messages(instruction, True), tokenize=False, add_generation_prompt=True)
    inputs = engine.processor(text=[text], videos=[list(frames)], return_tensors="pt", do_sample_frames=False)
    extra = torch.tensor([extra_tokens], dtype=torch.long)
    inputs["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(extra)], dim=1)
    return inputs
