"""What differs between video VLM families, in one place: how a video enters the prompt and the model.

The families differ in four ways, and each is answered by the model's own Hugging Face classes:

- **placeholder expansion**: Qwen2-VL / Qwen2.5-VL repeat ``<|video_pad|>`` once per merged patch;
  Qwen3-VL writes one ``<t seconds><|vision_start|>...<|vision_end|>`` group per temporal patch; the
  LLaVA video models repeat their video token per pooled patch (plus a newline token). The
  processor's ``_process_videos`` preprocesses the videos and returns each one's expansion
  (``replace_video_token``), so we expand with the family's own code and run each distinct video
  through preprocessing once, however many prompts show it;
- **time**: with ``video_metadata`` (the frames' real times) the processor computes Qwen2.5-VL's
  ``second_per_grid_ts`` and Qwen3-VL's timestamps; without it they assume a frame rate;
- **per-video inputs** beside the features: Qwen's ``video_grid_thw`` (and ``second_per_grid_ts``)
  place video tokens in 3-D rotary positions; LLaVA's take none. They are the processor's outputs
  other than the pixels, and are given per row;
- **features**: ``get_video_features`` returns one tensor per video (Qwen), or one batched tensor
  (LLaVA), plus Qwen3-VL's deepstack features (one per deepstack layer and video); a row's features
  are picked by :func:`features_of_rows` in whichever layout, and reach the forward through
  ``mm_encoder_outputs``, so a video is encoded once for every row (prompt, chosen, rejected,
  reference pass) that shows it.

Everything else (losses, log-probs, retrospection, the jobs) is family-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers.modeling_outputs import ModelOutput

PIXELS = "pixel_values_videos"
METADATA = "video_metadata"  # the processor's echo of the metadata: not a model input
FEATURE_INPUTS = (PIXELS, "video_grid_thw")  # what get_video_features takes, where the family has it


@dataclass
class ProcessedVideos:
    """Distinct videos, preprocessed once: the model's per-video tensors and each video's prompt expansion."""

    tensors: dict[str, torch.Tensor]  # pixel_values_videos and the family's per-video extras, first dim = video (Qwen's pixels: patches)
    placeholders: list[str]  # video i's expanded placeholder text

    def to(self, device: torch.device) -> ProcessedVideos:
        return ProcessedVideos({name: value.to(device) for name, value in self.tensors.items()}, self.placeholders)


class VideoPrompter:
    """A model's processor, used the family's own way for prompts that show videos (see the module docstring).

    ``token_types``: whether the model takes ``mm_token_type_ids`` (:func:`uses_3d_positions` of its inner model).
    """

    def __init__(self, processor, token_types: bool) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.video_token: str = processor.video_token
        self.video_token_id: int = processor.video_token_id
        self.has_token_types = token_types  # the model places tokens by modality (Qwen's M-RoPE: text 0, image 1, video 2)

    def process(self, videos: list[np.ndarray], metadata: list[dict | None] | None = None) -> ProcessedVideos:
        """Preprocess ``videos`` (each ``[N, H, W, 3]`` uint8 frames, already sampled); ``metadata[i]``: video i's
        frame times (:func:`synpo.video.metadata.frame_metadata` or ``SampledVideo.processor_metadata()``), used only when every video has it."""
        timed = metadata is not None and all(item is not None for item in metadata)
        timing = {METADATA: list(metadata)} if timed else {}
        # the processor's own hook: preprocessing plus each video's placeholder expansion (and, for Qwen2.5-VL, its
        # times); the metadata comes back too (Qwen3-VL's expansion reads it), and is dropped below
        processed, placeholders = self.processor._process_videos(
            [list(frames) for frames in videos], return_tensors="pt", do_sample_frames=False, return_metadata=True, **timing
        )
        tensors = {name: torch.as_tensor(value) for name, value in processed.items() if name != METADATA}
        return ProcessedVideos(tensors, list(placeholders))

    def expand(self, text: str, placeholder: str) -> str:
        """``text`` with its one video placeholder replaced by the video's expansion."""
        if text.count(self.video_token) != 1:
            raise ValueError(f"a prompt must hold exactly one {self.video_token!r} placeholder; found {text.count(self.video_token)}")
        return text.replace(self.video_token, placeholder)

    def token_types(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"mm_token_type_ids": ...}`` for families that take it (Qwen's rotary positions), else ``{}``."""
        if not self.has_token_types:
            return {}
        return {"mm_token_type_ids": torch.as_tensor(self.processor.create_mm_token_type_ids(input_ids.tolist()), device=input_ids.device)}


def row_inputs(tensors: dict[str, torch.Tensor], rows: list[int]) -> dict[str, torch.Tensor]:
    """The per-video forward inputs besides the pixels (``video_grid_thw``, ``second_per_grid_ts``, ...) for
    rows showing videos ``rows`` (one entry per row, an index into the videos)."""
    index = torch.tensor(rows, dtype=torch.long)
    return {name: value[index.to(value.device)] for name, value in tensors.items() if name != PIXELS}


def first_videos(tensors: dict[str, torch.Tensor], count: int) -> dict[str, torch.Tensor]:
    """The per-video tensors of the first ``count`` videos (Qwen's pixels are every video's patches in a row:
    ``t * h * w`` each, from ``video_grid_thw``; the LLaVA families' have one entry per video)."""
    if "video_grid_thw" in tensors:
        patches = int(tensors["video_grid_thw"][:count].prod(-1).sum())
        return {name: value[:patches] if name == PIXELS else value[:count] for name, value in tensors.items()}
    return {name: value[:count] for name, value in tensors.items()}


def encode(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> ModelOutput:
    """The vision side's output for each video of ``tensors`` (``model`` is the VLM or its inner model)."""
    inputs = {name: tensors[name] for name in FEATURE_INPUTS if name in tensors}
    return model.get_video_features(**inputs, return_dict=True)


def _pick(value, rows: list[int]):
    if isinstance(value, torch.Tensor):  # one batched tensor [videos, tokens, hidden] (LLaVA)
        return value[torch.tensor(rows, dtype=torch.long, device=value.device)]
    return tuple(value[row] for row in rows)  # one tensor per video (Qwen)


def features_of_rows(features: ModelOutput, rows: list[int]) -> ModelOutput:
    """``features`` (:func:`encode`) rearranged for rows showing videos ``rows``, as ``mm_encoder_outputs["video"]``:
    the pooled features and, where the family has them, the deepstack features of every layer."""
    picked = {"pooler_output": _pick(features.pooler_output, rows)}
    deepstack = getattr(features, "deepstack_features", None)
    if deepstack is not None:  # Qwen3-VL: one entry per deepstack layer, each per video
        picked["deepstack_features"] = [_pick(layer, rows) for layer in deepstack]
    return type(features)(**picked)


def uses_3d_positions(model: torch.nn.Module) -> bool:
    """Whether the family places tokens with 3-D rotary positions (M-RoPE: Qwen) rather than 1-D (LLaVA)."""
    return hasattr(model, "get_rope_index")
