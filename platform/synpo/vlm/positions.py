"""Qwen2-VL / Qwen2.5-VL rotary positions as the models were trained with (and as vLLM computes them).

These two families place a whole video as one block of 3-D positions (M-RoPE): temporal
``t * interval`` (Qwen2.5-VL: ``interval = tokens_per_second * second_per_grid_ts``, the frames' real
spacing; Qwen2-VL: 1), height and width, all offset by where the block starts. The text after the
block starts one past the block's largest position, on any axis (Qwen's reference code, the
transformers 4.x port, and vLLM).

transformers 5.x (5.19 and 5.23 here) advances the text by ``max(height, width)`` only, ignoring the
temporal extent. Whenever a video's time axis outruns its spatial grid — Qwen2.5-VL with 16 frames
over 60 s reaches temporal position 105 against a spatial extent of 16 at 448 px — the caption's text
positions then overlap the video's, unlike pretraining and unlike vLLM: pair generation on vLLM and
training on transformers would see different positions. :func:`use_reference_positions` installs the
reference on a loaded model, for training and the HF engine alike. Qwen3-VL is not affected: each
temporal patch is its own block (one frame group per timestamp), so its extent is the spatial one.
"""

from __future__ import annotations

import itertools
import types

import torch

BLOCK_VIDEO_FAMILIES = ("qwen2_vl", "qwen2_5_vl")  # a video is one M-RoPE block: the time axis can outrun the grid
TEXT, IMAGE, VIDEO = 0, 1, 2  # mm_token_type_ids


def reference_rope_index(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    **_: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(position_ids [3, B, L], rope_deltas [B, 1])``: the model's own ``get_rope_index`` contract, with text
    after a vision block starting at the block's largest position + 1. ``model`` is the inner VLM model
    (its ``get_vision_position_ids`` places one block)."""
    config = model.config
    merge = config.vision_config.spatial_merge_size
    tokens_per_second = getattr(config.vision_config, "tokens_per_second", None)  # Qwen2.5-VL only
    grids = {IMAGE: iter(image_grid_thw if image_grid_thw is not None else []), VIDEO: iter(video_grid_thw if video_grid_thw is not None else [])}
    seconds = iter(second_per_grid_ts.tolist() if second_per_grid_ts is not None else [])
    position_ids = torch.zeros(3, *input_ids.shape, dtype=input_ids.dtype, device=input_ids.device)
    deltas = []
    for row in range(input_ids.shape[0]):
        kept = attention_mask[row].bool() if attention_mask is not None else torch.ones_like(input_ids[row], dtype=torch.bool)
        types_of_tokens = mm_token_type_ids[row][kept].tolist()
        pieces, start = [], 0
        for kind, group in itertools.groupby(types_of_tokens):
            length = len(list(group))
            if kind == TEXT:
                pieces.append(torch.arange(length, device=input_ids.device).expand(3, -1) + start)
            else:
                interval = 1.0
                if kind == VIDEO and tokens_per_second is not None:
                    interval = tokens_per_second * next(seconds, 1.0)  # no times given: 1 s per temporal patch, as the model assumes
                pieces.append(model.get_vision_position_ids(start, next(grids[kind]), 1, merge, interval, device=input_ids.device))
            start = int(pieces[-1].max()) + 1
        positions = torch.cat(pieces, dim=1) if pieces else position_ids.new_zeros(3, 0)
        position_ids[:, row, kept] = positions.to(position_ids.dtype)
        deltas.append(start - len(types_of_tokens))
    return position_ids, torch.tensor(deltas, device=input_ids.device).unsqueeze(1)


def use_reference_positions(model: torch.nn.Module) -> bool:
    """Make a loaded Qwen2-VL / Qwen2.5-VL (``XForConditionalGeneration``, a peft wrapper, or the inner model) compute
    its positions with :func:`reference_rope_index`; returns whether the model is of such a family."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", base)
    if getattr(inner.config, "model_type", None) not in BLOCK_VIDEO_FAMILIES or not hasattr(inner, "get_vision_position_ids"):
        return False
    inner.get_rope_index = types.MethodType(reference_rope_index, inner)
    return True
