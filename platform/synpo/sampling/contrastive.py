"""Video contrastive decoding (CD) for Hugging Face ``generate`` (METHOD.md §1 step 4).

Two branches see the same prompt with different videos and keep their own KV caches:

- *full*: the N sampled frames — this is the branch ``generate`` itself runs;
- *sparse*: ``ceil(N / 3)`` frames spread over the whole video — run by :class:`SparseBranch`
  inside a logits processor, one cached forward step per generated token.

At every step the next-token logits are combined (:func:`contrast_logits`)::

    logits = (1 + a) * logits_full - a * logits_sparse                    # a = 0.5 by default
    logits[y] = -inf  where  logits_full[y] < log(b) + max_y' logits_full[y']   # b = 0.1

The second line is VCD's adaptive plausibility constraint (keep tokens with
``p_full(y) >= b * max p_full``; the softmax normaliser cancels, so it is a test on logits). The
authors' code has no such guard; it is our addition, on by default, ``b = 0`` turns it off.
``generate`` applies custom logits processors before temperature / top-k / top-p, so the cutoff
comes first, as VCD specifies, and greedy and sampled decoding both work. Sequences that have
finished keep receiving padding tokens in both branches (``generate``'s own per-sequence
handling), so the branches stay aligned row for row.

Positions: the Qwen families use 3-D rotary positions (M-RoPE) whose offsets depend on the video's
grid, so the sparse branch computes its own with ``get_rope_index`` at prefill and
``valid tokens so far + rope_delta`` afterwards, passing them explicitly (the model's stored
``rope_deltas`` belong to the full branch and are never touched). The LLaVA families use 1-D
positions: the count of valid tokens before each one, as ``generate`` gives the full branch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from transformers import DynamicCache, LogitsProcessor

RopeIndex = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def contrast_logits(full: torch.Tensor, sparse: torch.Tensor, alpha: float, cutoff: float) -> torch.Tensor:
    """``(1 + alpha) * full - alpha * sparse``, minus every token below the plausibility cutoff.

    ``full``, ``sparse``: ``[B, V]`` next-token logits of the two branches. ``cutoff`` is b in
    ``p_full(y) >= b * max p_full`` (0 keeps every token). Returns ``[B, V]`` float32.
    """
    full = full.float()
    combined = (1 + alpha) * full - alpha * sparse.float()  # [B, V]
    if cutoff > 0:
        threshold = full.max(dim=-1, keepdim=True).values + math.log(cutoff)  # [B, 1]
        combined = combined.masked_fill(full < threshold, float("-inf"))
    return combined


class SparseBranch:
    """The sparse-frames branch: its own inputs, KV cache and positions; one step per generated token.

    ``inputs`` are the model inputs for the distinct prompts of a pass (``[P, L]``) with the sparse
    video (:meth:`HFEngine.encode`: ids, masks, grids and the video's features); ``repeats`` is how
    many rows ``generate`` makes of each (``num_return_sequences``).
    """

    def __init__(self, model: torch.nn.Module, rope_index: RopeIndex | None, inputs: dict[str, torch.Tensor], repeats: int) -> None:
        self.model = model  # the model generate() runs (with its LoRA adapter, if any)
        self.rope_index = rope_index  # Qwen's get_rope_index: (input_ids, ...) -> ([3, P, L], [P, 1]); None: 1-D positions
        self.inputs = inputs
        self.repeats = repeats
        self.cache: DynamicCache | None = None
        self.attention_mask: torch.Tensor | None = None  # [B, L + steps]
        self.rope_deltas: torch.Tensor | None = None  # [B, 1]
        self.prompt_length = 0  # of the full branch's input_ids, to know which tokens are new

    def _prefill(self) -> torch.Tensor:
        inputs = self.inputs
        if self.rope_index is not None:  # 3-D M-RoPE: video tokens placed by their grid (and, for Qwen2.5-VL, time)
            extras = {name: inputs[name] for name in ("video_grid_thw", "second_per_grid_ts") if name in inputs}
            position_ids, rope_deltas = self.rope_index(
                inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"], attention_mask=inputs["attention_mask"], **extras
            )  # [3, P, L], [P, 1]
        else:  # 1-D positions that skip the left padding, as generate gives the full branch
            position_ids = (inputs["attention_mask"].long().cumsum(dim=1) - 1).clamp(min=0)  # [P, L]
            rope_deltas = torch.zeros_like(position_ids[:, :1])  # [P, 1]
        self.cache = DynamicCache()
        output = self.model(**inputs, position_ids=position_ids, past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.cache.batch_repeat_interleave(self.repeats)
        self.attention_mask = inputs["attention_mask"].repeat_interleave(self.repeats, dim=0)
        self.rope_deltas = rope_deltas.repeat_interleave(self.repeats, dim=0)
        return output.logits[:, -1].repeat_interleave(self.repeats, dim=0)  # [B, V]

    def _step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one new token per row (``[B, 1]``); returns the next-token logits ``[B, V]``."""
        self.attention_mask = torch.cat([self.attention_mask, torch.ones_like(tokens)], dim=1)
        position_ids = self.attention_mask.sum(dim=1, keepdim=True) - 1 + self.rope_deltas  # [B, 1]
        if self.rope_index is not None:
            position_ids = position_ids.unsqueeze(0).expand(3, -1, -1)  # [3, B, 1]: text tokens move in all three axes alike
        output = self.model(
            input_ids=tokens,
            attention_mask=self.attention_mask,
            position_ids=position_ids,
            past_key_values=self.cache,
            use_cache=True,
        )
        return output.logits[:, -1]

    def next_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The sparse branch's logits for the token after ``input_ids`` (the full branch's rows ``[B, L + t]``)."""
        if self.cache is None:
            self.prompt_length = input_ids.shape[1]
            return self._prefill()
        fed = self.attention_mask.shape[1] - self.inputs["attention_mask"].shape[1]
        new = input_ids.shape[1] - self.prompt_length
        if new != fed + 1:
            raise RuntimeError(f"sparse branch is out of step: {fed} tokens fed, {new} generated")
        return self._step(input_ids[:, -1:])


class ContrastiveLogitsProcessor(LogitsProcessor):
    """A ``generate`` logits processor that swaps the full branch's scores for the contrasted ones."""

    def __init__(self, sparse: SparseBranch, alpha: float, cutoff: float) -> None:
        self.sparse = sparse
        self.alpha = alpha
        self.cutoff = cutoff

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        sparse_logits = self.sparse.next_logits(input_ids)
        return contrast_logits(scores, sparse_logits.to(scores.device), self.alpha, self.cutoff)
