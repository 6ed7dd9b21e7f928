"""Turn preference pairs into one model batch: chosen and rejected stacked, labels on responses only.

For B pairs the batch holds 2B sequences, ``[chosen_0 .. chosen_{B-1}, rejected_0 .. rejected_{B-1}]``,
each ``prompt (with the video's placeholder tokens) + response + EOS``, right-padded. ``labels`` is
-100 on prompt, vision and padding positions and the token id on response positions (EOS
included), so one forward pass scores both responses of every pair.

The video of a pair is processed once, by the model's own processor (its family's placeholder
expansion and, given the frames' metadata, their times): ``PairBatch.videos`` holds the B videos'
tensors (pixels, and the family's per-video extras such as Qwen's ``video_grid_thw``), and
:func:`synpo.training.logprobs.encode_videos` encodes them once; :func:`~synpo.training.logprobs.response_logps`
feeds the features to both sequences of the pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from synpo.pairs.schema import PairSchemaError
from synpo.vlm.videos import first_videos

IGNORE_INDEX = -100
TEXT_INPUTS = ("input_ids", "attention_mask", "mm_token_type_ids")  # the processor's outputs that are not the video's


@dataclass
class PairExample:
    pair_id: str
    prompt: str
    chosen: str
    rejected: str
    frames: np.ndarray | None = None  # [N, H, W, 3] uint8; None for text-only models
    video_metadata: dict | None = None  # SampledVideo.processor_metadata(): the frames' real times
    ref_chosen_logp: float | None = None
    ref_rejected_logp: float | None = None


@dataclass
class PairBatch:
    pair_ids: list[str]
    input_ids: torch.Tensor  # [2B, T]
    attention_mask: torch.Tensor  # [2B, T]
    labels: torch.Tensor  # [2B, T], IGNORE_INDEX off the responses
    mm_token_type_ids: torch.Tensor | None = None  # [2B, T] (families with 3-D positions: Qwen)
    # the B videos (once each), as their processor returns them: pixel_values_videos and per-video extras, e.g.
    # video_grid_thw [B, 3] and Qwen2.5-VL's second_per_grid_ts [B] (seconds per temporal patch)
    videos: dict[str, torch.Tensor] | None = None
    ref_chosen_logp: torch.Tensor | None = None  # [B], when precomputed
    ref_rejected_logp: torch.Tensor | None = None

    @property
    def num_pairs(self) -> int:
        return len(self.pair_ids)

    def first_pairs(self, count: int) -> PairBatch:
        """The batch of this batch's first ``count`` pairs (their chosen and rejected rows, their videos)."""
        pairs = self.num_pairs
        rows = torch.tensor(list(range(count)) + list(range(pairs, pairs + count)))
        picked = {name: value[rows] for name, value in self.__dict__.items() if isinstance(value, torch.Tensor) and value.shape[0] == 2 * pairs}
        return PairBatch(
            pair_ids=self.pair_ids[:count],
            **picked,
            videos=None if self.videos is None else first_videos(self.videos, count),
            ref_chosen_logp=None if self.ref_chosen_logp is None else self.ref_chosen_logp[:count],
            ref_rejected_logp=None if self.ref_rejected_logp is None else self.ref_rejected_logp[:count],
        )

    def _map(self, move) -> PairBatch:
        moved = {name: move(value) if isinstance(value, torch.Tensor) else value for name, value in self.__dict__.items()}
        if self.videos is not None:
            moved["videos"] = {name: move(value) for name, value in self.videos.items()}
        return PairBatch(**moved)

    def to(self, device: torch.device, non_blocking: bool = False) -> PairBatch:
        return self._map(lambda tensor: tensor.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> PairBatch:
        """Page-locked copies (what ``DataLoader(pin_memory=True)`` calls), so ``to(cuda, non_blocking=True)`` overlaps compute."""
        return self._map(torch.Tensor.pin_memory)


class PairCollator:
    """Callable for a ``DataLoader``: ``list[PairExample] -> PairBatch``.

    ``processor`` is the model's ``AutoProcessor`` (video models) or tokenizer (text models).
    Responses longer than ``max_response_tokens`` (EOS included) are cut to that length.
    """

    def __init__(self, processor, max_response_tokens: int = 512) -> None:
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.is_video = hasattr(processor, "video_processor")
        self.max_response_tokens = max_response_tokens
        self.eos_id = self.tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in self.tokenizer.get_vocab() else self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_id

    def _prompt(self, example: PairExample) -> dict:
        if self.is_video:
            if example.frames is None:
                raise PairSchemaError(f"pair {example.pair_id!r}: a video model needs frames")
            messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": example.prompt}]}]
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            metadata = {"video_metadata": [example.video_metadata]} if example.video_metadata is not None else {}
            return self.processor(text=[text], videos=[list(example.frames)], return_tensors="pt", do_sample_frames=False, **metadata)
        messages = [{"role": "user", "content": example.prompt}]
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        return {"input_ids": torch.tensor([ids])}

    def _response(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.eos_id]
        return ids[: self.max_response_tokens]

    def __call__(self, examples: list[PairExample]) -> PairBatch:
        prompts = [self._prompt(example) for example in examples]
        sequences: list[list[int]] = []
        labels: list[list[int]] = []
        types: list[list[int]] = []
        for side in ("chosen", "rejected"):
            for example, prompt in zip(examples, prompts, strict=True):
                prompt_ids = prompt["input_ids"][0].tolist()
                response = self._response(getattr(example, side))
                sequences.append(prompt_ids + response)
                labels.append([IGNORE_INDEX] * len(prompt_ids) + response)
                if "mm_token_type_ids" in prompt:
                    types.append(prompt["mm_token_type_ids"][0].tolist() + [0] * len(response))
        length = max(len(sequence) for sequence in sequences)

        def pad(rows: list[list[int]], value: int) -> torch.Tensor:
            return torch.tensor([row + [value] * (length - len(row)) for row in rows], dtype=torch.long)

        batch = PairBatch(
            pair_ids=[example.pair_id for example in examples],
            input_ids=pad(sequences, self.pad_id),
            attention_mask=pad([[1] * len(sequence) for sequence in sequences], 0),
            labels=pad(labels, IGNORE_INDEX),
        )
        if self.is_video:
            batch.mm_token_type_ids = pad(types, 0) if types else None
            batch.videos = {
                name: torch.cat([torch.as_tensor(prompt[name]) for prompt in prompts]) for name in prompts[0] if name not in TEXT_INPUTS
            }
        if all(example.ref_chosen_logp is not None and example.ref_rejected_logp is not None for example in examples):
            batch.ref_chosen_logp = torch.tensor([example.ref_chosen_logp for example in examples], dtype=torch.float32)
            batch.ref_rejected_logp = torch.tensor([example.ref_rejected_logp for example in examples], dtype=torch.float32)
        return batch
