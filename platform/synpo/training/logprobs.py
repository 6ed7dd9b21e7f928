"""Per-token log-probabilities of response tokens, computed without extra ``[B, T, V]`` float32 copies.

Two savings over the textbook ``log_softmax(logits).gather(labels)``:

1. The LM head only runs where a response token is predicted: ``logits_to_keep`` gets a boolean mask
   of those positions, so prompt and (many) vision positions never produce logits: ``[N_resp, V]``.
2. :class:`ChunkedTokenLogProbs` reads those logits in row chunks, in float32, keeping only the
   log-normaliser ``[N_resp]`` for backward and recomputing each chunk's softmax there. Peak extra
   memory is one ``[chunk, V]`` float32 block, not a float32 copy of all logits.

The video of a pair is encoded once (:func:`encode_videos`) and its features are fed to both the
chosen and the rejected sequence through ``mm_encoder_outputs``; with the vision tower frozen they are
computed under ``no_grad`` and reused by the reference pass as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.modeling_outputs import ModelOutput

from synpo.training.collate import IGNORE_INDEX, PairBatch
from synpo.training.model import is_vision_name
from synpo.vlm.videos import PIXELS, encode, features_of_rows, row_inputs


class ChunkedTokenLogProbs(torch.autograd.Function):
    """``log softmax(logits)[n, targets[n]]`` for ``logits [N, V]`` in row chunks, in float32 (or float64) math."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, chunk_rows: int) -> torch.Tensor:
        compute = torch.promote_types(logits.dtype, torch.float32)
        picked, normalisers = [], []
        for start in range(0, logits.shape[0], chunk_rows):
            block = logits[start : start + chunk_rows].to(compute)  # [c, V]
            normaliser = torch.logsumexp(block, dim=-1)  # [c]
            picked.append(block.gather(-1, targets[start : start + chunk_rows, None]).squeeze(-1) - normaliser)
            normalisers.append(normaliser)
        log_normaliser = torch.cat(normalisers) if normalisers else logits.new_zeros(0, dtype=compute)
        ctx.save_for_backward(logits, targets, log_normaliser)
        ctx.chunk_rows = chunk_rows
        return torch.cat(picked) if picked else logits.new_zeros(0, dtype=compute)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        logits, targets, log_normaliser = ctx.saved_tensors
        grad_logits = torch.empty_like(logits)
        for start in range(0, logits.shape[0], ctx.chunk_rows):
            stop = start + ctx.chunk_rows
            upstream = grad_output[start:stop, None].to(log_normaliser.dtype)  # [c, 1]
            softmax = (logits[start:stop].to(log_normaliser.dtype) - log_normaliser[start:stop, None]).exp()  # [c, V]
            block = -softmax * upstream  # d/dlogits of log p[target] = onehot - softmax
            block.scatter_add_(-1, targets[start:stop, None], upstream)
            grad_logits[start:stop] = block.to(logits.dtype)
        return grad_logits, None, None


def token_logps(logits: torch.Tensor, targets: torch.Tensor, chunk_rows: int = 1024) -> torch.Tensor:
    """``[N, V], [N] -> [N]`` float32 log-probabilities of ``targets``."""
    return ChunkedTokenLogProbs.apply(logits, targets, chunk_rows)


@dataclass
class ResponseLogps:
    """Per-token response log-probs, chosen and rejected, each ``[B, T-1]`` with masks."""

    chosen_logps: torch.Tensor
    chosen_mask: torch.Tensor
    rejected_logps: torch.Tensor
    rejected_mask: torch.Tensor

    @property
    def num_tokens(self) -> int:
        return int(self.chosen_mask.sum() + self.rejected_mask.sum())


def vision_is_frozen(model: torch.nn.Module) -> bool:
    return not any(parameter.requires_grad for name, parameter in model.named_parameters() if is_vision_name(name))


def encode_videos(model: torch.nn.Module, batch: PairBatch) -> ModelOutput:
    """Vision features of the batch's B videos (:func:`synpo.vlm.videos.encode`; no grad when the tower is frozen)."""
    with torch.set_grad_enabled(torch.is_grad_enabled() and not vision_is_frozen(model)):
        return encode(model, batch.videos)


def response_logps(
    model: torch.nn.Module,
    batch: PairBatch,
    video_features: ModelOutput | None = None,
    encode_video_once: bool = True,
    chunk_rows: int = 1024,
) -> ResponseLogps:
    """One forward pass over the 2B stacked sequences; returns the chosen and rejected token log-probs.

    ``video_features`` (from :func:`encode_videos`) lets callers share one encoding between the
    policy and reference passes. ``encode_video_once=False`` feeds the pixels twice (the naive path,
    kept to measure the saving).
    """
    predicts_response = batch.labels[:, 1:] != IGNORE_INDEX  # [2B, T-1]: position t predicts token t+1
    keep = torch.zeros_like(batch.labels, dtype=torch.bool)  # [2B, T]
    keep[:, :-1] = predicts_response
    inputs: dict = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "logits_to_keep": keep, "use_cache": False}
    if batch.videos is not None:
        rows = list(range(batch.num_pairs)) * 2  # the video of each sequence: chosen then rejected
        if batch.mm_token_type_ids is not None:
            inputs["mm_token_type_ids"] = batch.mm_token_type_ids
        inputs.update(row_inputs(batch.videos, rows))  # e.g. video_grid_thw [2B, 3]
        if encode_video_once:
            features = video_features if video_features is not None else encode_videos(model, batch)
            inputs["mm_encoder_outputs"] = {"video": features_of_rows(features, rows)}
        else:
            pixels = batch.videos[PIXELS]
            inputs[PIXELS] = torch.cat([pixels, pixels])
    logits = model(**inputs).logits  # [N_resp, V]
    targets = batch.labels[:, 1:][predicts_response]  # [N_resp]
    flat = token_logps(logits, targets, chunk_rows)
    logps = torch.zeros(predicts_response.shape, dtype=flat.dtype, device=flat.device).masked_scatter(predicts_response, flat)
    pairs = batch.num_pairs
    return ResponseLogps(logps[:pairs], predicts_response[:pairs], logps[pairs:], predicts_response[pairs:])


@torch.no_grad()
def reference_sequence_logps(
    model: torch.nn.Module, batch: PairBatch, video_features: ModelOutput | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum log pi_ref`` of chosen and rejected ``[B]`` each: the same model with its LoRA adapters disabled."""
    with model.disable_adapter():
        reference = response_logps(model, batch, video_features=video_features)
    chosen = torch.where(reference.chosen_mask, reference.chosen_logps, 0.0).sum(-1)
    rejected = torch.where(reference.rejected_mask, reference.rejected_logps, 0.0).sum(-1)
    return chosen, rejected
