"""Qwen2-VL / Qwen2.5-VL positions: text after a video starts one past the video's largest position, on any axis.

transformers 5.x starts it at ``max(height, width)`` past the block, so when the time axis outruns the
grid (long videos, Qwen2.5-VL's real frame spacing) the text overlaps the video's positions, unlike
the models' pretraining and vLLM (tests/vllm_cpu/test_vllm_families.py checks vLLM agrees with ours).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText

from synpo.vlm.positions import TEXT, VIDEO, reference_rope_index, use_reference_positions


@pytest.fixture(scope="module")
def qwen2_5_vl(family_vlm):
    return AutoModelForImageTextToText.from_pretrained(family_vlm("qwen2.5-vl")).model  # the stock get_rope_index


def video_prompt(left_padding: int = 0) -> dict:
    """[pad * left_padding] + 3 text tokens + a 3 x 4 x 4 video grid (12 merged tokens) + 2 text tokens."""
    types = [TEXT] * 3 + [VIDEO] * 12 + [TEXT] * 2
    mask = [0] * left_padding + [1] * len(types)
    types = [TEXT] * left_padding + types
    return {
        "input_ids": torch.arange(len(types))[None] + 10,
        "mm_token_type_ids": torch.tensor([types]),
        "attention_mask": torch.tensor([mask]),
        "video_grid_thw": torch.tensor([[3, 4, 4]]),
    }


def test_text_after_a_long_video_starts_past_its_last_temporal_position(qwen2_5_vl):
    """3 s per temporal patch x tokens_per_second 4 = 12 positions per patch: temporal 3, 15, 27 (after 3 text tokens),
    height and width 3..4; the text after it at 28 and 29, not at 5 and 6 as transformers 5.x puts it."""
    inputs = video_prompt()
    assert qwen2_5_vl.config.vision_config.tokens_per_second == 4
    ours, deltas = reference_rope_index(qwen2_5_vl, **inputs, second_per_grid_ts=torch.tensor([3.0]))
    temporal = [0, 1, 2] + [3] * 4 + [15] * 4 + [27] * 4 + [28, 29]
    spatial_h = [0, 1, 2] + [3, 3, 4, 4] * 3 + [28, 29]
    spatial_w = [0, 1, 2] + [3, 4, 3, 4] * 3 + [28, 29]
    assert ours[:, 0].tolist() == [temporal, spatial_h, spatial_w]
    assert deltas.tolist() == [[30 - 17]]  # the next token's position (30) minus its index (17)
    stock, _ = qwen2_5_vl.get_rope_index(**inputs, second_per_grid_ts=torch.tensor([3.0]))
    assert stock[0, 0, -2:].tolist() == [5, 6]  # the trap: text positions inside the video's time span


@pytest.mark.parametrize("left_padding", [0, 3])
def test_when_time_does_not_outrun_the_grid_the_positions_are_the_stock_ones(qwen2_5_vl, left_padding):
    inputs = video_prompt(left_padding)
    # 1 s per patch (4 positions per patch: 3 patches outrun the 2-wide grid), and 1/8 s (0.5 per patch: temporal 0, 0, 1)
    for seconds in (None, torch.tensor([0.125])):
        ours, our_deltas = reference_rope_index(qwen2_5_vl, **inputs, second_per_grid_ts=seconds)
        stock, stock_deltas = qwen2_5_vl.get_rope_index(**inputs, second_per_grid_ts=seconds)
        if seconds is None:
            assert not torch.equal(ours, stock)
        else:
            assert torch.equal(ours, stock) and torch.equal(our_deltas, stock_deltas)


def test_only_the_block_video_families_get_the_reference(family_vlm):
    for family, installed in (("qwen2-vl", True), ("qwen2.5-vl", True), ("qwen3-vl", False), ("llava-onevision", False)):
        model = AutoModelForImageTextToText.from_pretrained(family_vlm(family))
        assert use_reference_positions(model) is installed, family
        assert ("get_rope_index" in vars(model.model)) is installed, family
