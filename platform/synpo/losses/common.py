"""What every preference loss returns, and the per-sequence statistics they share.

Shapes: ``B`` pairs, ``T`` response positions. Log-probabilities are of the *response* tokens only
(prompt, vision and padding positions carry mask 0; EOS is a response token).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LossOutput:
    """Per-example values; the caller reduces (usually ``losses.mean()``)."""

    losses: torch.Tensor  # [B]
    chosen_rewards: torch.Tensor  # [B]
    rejected_rewards: torch.Tensor  # [B]
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [B]


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_t values[b, t] * mask[b, t]`` -> [B]. Masked positions contribute exactly zero (even if inf/nan)."""
    return torch.where(mask.bool(), values, torch.zeros_like(values)).sum(dim=-1)


def token_count(mask: torch.Tensor) -> torch.Tensor:
    """Number of response tokens per row -> [B]; a row with none is an error, not a silent 0/0."""
    counts = mask.bool().sum(dim=-1)
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"rows {empty} have no response tokens (all-zero mask); every response needs at least EOS")
    return counts


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over response positions -> [B]."""
    counts = token_count(mask).to(values.dtype)
    return masked_sum(values, mask) / counts


def sequence_logp(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``log pi(y|x) = sum_t log p_t`` -> [B]."""
    return masked_sum(logps, mask)


def mean_logp(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mean_t log p_t`` (length-normalised log-likelihood) -> [B]."""
    return masked_mean(logps, mask)


def geometric_mean_prob(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``G(y) = exp(mean_t log p_t)``, the geometric mean token probability -> [B]."""
    return mean_logp(logps, mask).exp()


def arithmetic_mean_prob(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``A(y) = mean_t p_t``, the arithmetic mean token probability -> [B]."""
    return masked_mean(logps.exp(), mask)
