"""The SynPO objective (Dang et al., "SynPO: Synergizing Descriptiveness and Preference Optimization
for Video Detailed Captioning", §4.3 Eq. 4; variants from App. B Table 8).

For a response ``y`` with response-token probabilities ``p_t`` (t = 1..T, EOS included):

    G(y) = exp( (1/T) sum_t log p_t )        geometric mean token probability
    A(y) = (1/T) sum_t p_t                   arithmetic mean token probability
    M(y) = (1/T) sum_t log p_t               mean log-likelihood

Per pair (y_w chosen, y_l rejected), with a *plain* sigmoid (not log-sigmoid) and no reference model:

    synpo:  L = -[ sigmoid(alpha * (G(y_w) - G(y_l))) + beta * A(y_w) ]        (Eq. 4)
    v1:     L = -sigmoid(alpha * (G(y_w) - G(y_l)))                            (no language term)
    v2:     L = -sigmoid(alpha * (G(y_w) - G(y_l))) - beta * M(y_w)
    v3:     L = -sigmoid(alpha * (A(y_w) - A(y_l))) - beta * A(y_w)
    v4:     L = -sigmoid(alpha * (A(y_w) - A(y_l))) - beta * M(y_w)
    v5:     L = -(alpha * (G(y_w) - G(y_l))) - beta * A(y_w)                   (no sigmoid; paper: alpha = 1)

Rewards reported: G(y_w), G(y_l) (A for v3/v4, whose preference term compares A). Paper defaults:
alpha = 30, beta = 0.2 (grids alpha in {20, 30, 50}, beta in {0.1, 0.2, 0.3}).
"""

from __future__ import annotations

from typing import Literal

import torch

from synpo.losses.common import LossOutput, arithmetic_mean_prob, geometric_mean_prob, mean_logp

SynPOVariant = Literal["synpo", "v1", "v2", "v3", "v4", "v5"]
VARIANTS: tuple[str, ...] = ("synpo", "v1", "v2", "v3", "v4", "v5")


def synpo_loss(
    chosen_logps: torch.Tensor,  # [B, T_w] log p of chosen response tokens
    chosen_mask: torch.Tensor,  # [B, T_w] 1 on response tokens
    rejected_logps: torch.Tensor,  # [B, T_l]
    rejected_mask: torch.Tensor,  # [B, T_l]
    alpha: float = 30.0,
    beta: float = 0.2,
    variant: SynPOVariant = "synpo",
) -> LossOutput:
    """SynPO loss per pair (see the module docstring for every variant's equation)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown SynPO variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    g_chosen = geometric_mean_prob(chosen_logps, chosen_mask)  # [B]
    g_rejected = geometric_mean_prob(rejected_logps, rejected_mask)  # [B]
    a_chosen = arithmetic_mean_prob(chosen_logps, chosen_mask)  # [B]
    a_rejected = arithmetic_mean_prob(rejected_logps, rejected_mask)  # [B]
    m_chosen = mean_logp(chosen_logps, chosen_mask)  # [B]

    compares_arithmetic = variant in ("v3", "v4")
    chosen_score, rejected_score = (a_chosen, a_rejected) if compares_arithmetic else (g_chosen, g_rejected)
    margin = alpha * (chosen_score - rejected_score)  # [B]
    preference = margin if variant == "v5" else torch.sigmoid(margin)
    if variant == "v1":
        language = torch.zeros_like(preference)
    elif variant in ("v2", "v4"):
        language = beta * m_chosen
    else:
        language = beta * a_chosen
    losses = -(preference + language)
    metrics = {
        "G_chosen": g_chosen.detach(),
        "G_rejected": g_rejected.detach(),
        "A_chosen": a_chosen.detach(),
        "A_rejected": a_rejected.detach(),
        "preference_term": preference.detach(),
        "language_term": language.detach(),
    }
    return LossOutput(losses, chosen_score.detach(), rejected_score.detach(), metrics)
