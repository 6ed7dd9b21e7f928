"""The DPO-family baselines the SynPO paper compares against (App. B, Table 7), plus SFT.

Notation (per pair; sums over response tokens, EOS included):

    log pi(y)   = sum_t log p_theta(y_t | x, y_<t)          policy sequence log-likelihood
    r(y)        = log pi(y) - log pi_ref(y)                 log-ratio to the reference model
    |y|         = number of response tokens

Reference log-likelihoods come in as per-sequence sums ``[B]`` (``ref_chosen_logp``,
``ref_rejected_logp``), computed by the same model with its LoRA adapters disabled or precomputed
and stored beside the pairs. Each function returns per-pair losses ``[B]`` and rewards; the caller
reduces. Defaults are the paper's (and, for DPO, the authors' baseline code: beta = 0.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synpo.losses.common import LossOutput, mean_logp, sequence_logp


def _margin_metrics(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"logp_chosen": chosen.detach(), "logp_rejected": rejected.detach()}


def dpo_loss(chosen_logps, chosen_mask, rejected_logps, rejected_mask, ref_chosen_logp, ref_rejected_logp, beta: float = 0.1) -> LossOutput:
    """DPO (Rafailov et al. 2023):  L = -log sigmoid( beta * (r(y_w) - r(y_l)) ).  Rewards: beta * r(y)."""
    policy_chosen, policy_rejected = sequence_logp(chosen_logps, chosen_mask), sequence_logp(rejected_logps, rejected_mask)
    chosen_rewards = beta * (policy_chosen - ref_chosen_logp)
    rejected_rewards = beta * (policy_rejected - ref_rejected_logp)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    return LossOutput(losses, chosen_rewards.detach(), rejected_rewards.detach(), _margin_metrics(policy_chosen, policy_rejected))


def ipo_loss(chosen_logps, chosen_mask, rejected_logps, rejected_mask, ref_chosen_logp, ref_rejected_logp, tau: float = 0.1) -> LossOutput:
    """IPO (Azar et al. 2023):  L = ( r(y_w) - r(y_l) - 1 / (2 tau) )^2.  Rewards: r(y)."""
    policy_chosen, policy_rejected = sequence_logp(chosen_logps, chosen_mask), sequence_logp(rejected_logps, rejected_mask)
    chosen_rewards = policy_chosen - ref_chosen_logp
    rejected_rewards = policy_rejected - ref_rejected_logp
    losses = (chosen_rewards - rejected_rewards - 1.0 / (2.0 * tau)) ** 2
    return LossOutput(losses, chosen_rewards.detach(), rejected_rewards.detach(), _margin_metrics(policy_chosen, policy_rejected))


def cpo_loss(chosen_logps, chosen_mask, rejected_logps, rejected_mask, beta: float = 0.1, nll_weight: float = 1.0) -> LossOutput:
    """CPO (Xu et al. 2024):  L = -log sigmoid( beta * (log pi(y_w) - log pi(y_l)) ) + lambda * NLL(y_w).

    NLL(y_w) is the mean per-token negative log-likelihood of the chosen response, as in CPO's
    reference implementation (Table 7 writes it as -lambda * log pi(y_w)); lambda = 1. Rewards:
    beta * log pi(y). No reference model.
    """
    policy_chosen, policy_rejected = sequence_logp(chosen_logps, chosen_mask), sequence_logp(rejected_logps, rejected_mask)
    chosen_rewards, rejected_rewards = beta * policy_chosen, beta * policy_rejected
    nll = -mean_logp(chosen_logps, chosen_mask)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards) + nll_weight * nll
    metrics = {**_margin_metrics(policy_chosen, policy_rejected), "nll_chosen": nll.detach()}
    return LossOutput(losses, chosen_rewards.detach(), rejected_rewards.detach(), metrics)


def dpop_loss(
    chosen_logps, chosen_mask, rejected_logps, rejected_mask, ref_chosen_logp, ref_rejected_logp, beta: float = 0.1, penalty: float = 50.0
) -> LossOutput:
    """DPO-Positive (Pal et al. 2024, "Smaug"):

        L = -log sigmoid( beta * ( r(y_w) - r(y_l) - lambda * max(0, log pi_ref(y_w) - log pi(y_w)) ) )

    The penalty is active when the chosen response became *less* likely than under the reference.
    Defaults beta = 0.1, lambda = 50. Rewards: beta * r(y).
    """
    policy_chosen, policy_rejected = sequence_logp(chosen_logps, chosen_mask), sequence_logp(rejected_logps, rejected_mask)
    chosen_ratio, rejected_ratio = policy_chosen - ref_chosen_logp, policy_rejected - ref_rejected_logp
    shortfall = torch.clamp(ref_chosen_logp - policy_chosen, min=0.0)
    losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio - penalty * shortfall))
    metrics = {**_margin_metrics(policy_chosen, policy_rejected), "dpop_shortfall": shortfall.detach()}
    return LossOutput(losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach(), metrics)


def kto_loss(
    chosen_logps,
    chosen_mask,
    rejected_logps,
    rejected_mask,
    ref_chosen_logp,
    ref_rejected_logp,
    beta: float = 0.1,
    chosen_weight: float = 1.0,
    rejected_weight: float = 1.0,
) -> LossOutput:
    """KTO (Ethayarajh et al. 2024), paired form:

        L = lambda_w * (1 - sigmoid(beta * r(y_w) - z_ref)) + lambda_l * (1 - sigmoid(z_ref - beta * r(y_l)))

    (Table 7 writes the same objective without the constant 1s.) ``z_ref`` estimates
    ``beta * KL(pi || pi_ref)`` from the batch: ``beta * max(0, mean over the batch's chosen and
    rejected responses of r(y))``, detached — KTO's own implementation estimates it from mismatched
    pairs, which paired data does not have. Defaults lambda_w = lambda_l = 1, beta = 0.1.
    """
    policy_chosen, policy_rejected = sequence_logp(chosen_logps, chosen_mask), sequence_logp(rejected_logps, rejected_mask)
    chosen_ratio, rejected_ratio = policy_chosen - ref_chosen_logp, policy_rejected - ref_rejected_logp
    z_ref = (beta * torch.cat([chosen_ratio, rejected_ratio]).mean().clamp(min=0.0)).detach()
    losses = chosen_weight * (1 - torch.sigmoid(beta * chosen_ratio - z_ref)) + rejected_weight * (
        1 - torch.sigmoid(z_ref - beta * rejected_ratio)
    )
    metrics = {**_margin_metrics(policy_chosen, policy_rejected), "kto_z_ref": z_ref.expand_as(losses)}
    return LossOutput(losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach(), metrics)


def simpo_loss(chosen_logps, chosen_mask, rejected_logps, rejected_mask, beta: float = 2.0, gamma: float = 1.0) -> LossOutput:
    """SimPO (Meng et al. 2024):  L = -log sigmoid( beta/|y_w| log pi(y_w) - beta/|y_l| log pi(y_l) - gamma ).

    Length-normalised, no reference model. Defaults beta = 2.0, gamma = 1.0. Rewards:
    beta/|y| * log pi(y).
    """
    chosen_rewards = beta * mean_logp(chosen_logps, chosen_mask)
    rejected_rewards = beta * mean_logp(rejected_logps, rejected_mask)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards - gamma)
    return LossOutput(losses, chosen_rewards.detach(), rejected_rewards.detach(), {})


def sft_loss(chosen_logps, chosen_mask, rejected_logps, rejected_mask) -> LossOutput:
    """SFT on the chosen response:  L = -(1/|y_w|) sum_t log p_t(y_w).  Rewards: mean log p (rejected: monitored only)."""
    chosen_rewards = mean_logp(chosen_logps, chosen_mask)
    rejected_rewards = mean_logp(rejected_logps, rejected_mask)
    return LossOutput(-chosen_rewards, chosen_rewards.detach(), rejected_rewards.detach(), {})
