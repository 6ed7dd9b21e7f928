"""Golden values for every objective, worked out by hand on one ragged batch (B = 3).

Response-token probabilities; every masked position (prompt or padding) holds log p = -3.0, which
must never count:

    row  chosen y_w                   rejected y_l                     mask layout
    0    (0.8, 0.2)                   (0.1, 0.1)                       y_w: prompt, 2 tokens, pad;  y_l: 2 tokens, 3 pads
    1    (0.2, 0.2, 0.2)              (0.9)                            y_w: 3 tokens, pad;  y_l: 2 prompt, 1 token, 2 pads
    2    (0.25, 0.5, 0.5, 1.0)        (0.4, 0.1, 0.4, 0.1, 0.4)        no masked position

Per response (|y| tokens; log pi = sum_t log p_t; M = log pi / |y|; G = exp(M); A = mean_t p_t):

    y_w0: log pi = log .8 + log .2 = log .16 = -1.8325815;  M = log .4 = -0.9162907;  G = 0.4;  A = 1.0 / 2 = 0.5
    y_w1: log pi = 3 log .2 = -4.8283137;  M = log .2 = -1.6094379;  G = A = 0.2
    y_w2: log pi = log(.25 * .5 * .5 * 1) = log(1/16) = -2.7725887;  M = log .5 = -0.6931472;  G = 0.5;  A = 2.25 / 4 = 0.5625
    y_l0: log pi = 2 log .1 = -4.6051702;  M = log .1 = -2.3025851;  G = A = 0.1
    y_l1: log pi = M = log .9 = -0.1053605;  G = A = 0.9
    y_l2: log pi = 3 log .4 + 2 log .1 = -2.7488722 - 4.6051702 = -7.3540424;  M = -7.3540424 / 5 = -1.4708085;
          G = exp(-1.4708085) = 0.2297397;  A = 1.4 / 5 = 0.28

Reference: log pi_ref(y_w) = (-2.0, -5.5, -2.0), log pi_ref(y_l) = (-4.0, -1.0, -9.0), so r = log pi - log pi_ref:

    r(y_w) = (-1.8325815 + 2.0, -4.8283137 + 5.5, -2.7725887 + 2.0) = ( 0.1674185, 0.6716863, -0.7725887)
    r(y_l) = (-4.6051702 + 4.0, -0.1053605 + 1.0, -7.3540424 + 9.0) = (-0.6051702, 0.8946395,  1.6459576)

The rows differ on purpose: row 1 prefers the rejected response (every margin is negative there);
row 2 is the only one whose chosen log pi fell below the reference (DPOP's penalty) and whose
rejected G and A differ. A loss that returns the batch mean in every row, swaps chosen and rejected,
flips a sign, computes KTO's reference point per row, or counts a masked position or drops a
response token fails here.
"""

import math
import re
from typing import NamedTuple

import pytest
import torch

from synpo.losses import OBJECTIVES, compute_loss, get_objective
from synpo.losses.synpo import synpo_loss

MASKED = -3.0  # log p at every prompt/padding position


def ragged_batch():
    """``(chosen_logps [3, 4], chosen_mask, rejected_logps [3, 5], rejected_mask)`` of the module docstring."""
    log = math.log
    chosen = torch.tensor(
        [
            [MASKED, log(0.8), log(0.2), MASKED],
            [log(0.2), log(0.2), log(0.2), MASKED],
            [log(0.25), log(0.5), log(0.5), log(1.0)],
        ],
        dtype=torch.float64,
    )
    chosen_mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    rejected = torch.tensor(
        [
            [log(0.1), log(0.1), MASKED, MASKED, MASKED],
            [MASKED, MASKED, log(0.9), MASKED, MASKED],
            [log(0.4), log(0.1), log(0.4), log(0.1), log(0.4)],
        ],
        dtype=torch.float64,
    )
    rejected_mask = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    return chosen, chosen_mask, rejected, rejected_mask


REF_CHOSEN = torch.tensor([-2.0, -5.5, -2.0], dtype=torch.float64)
REF_REJECTED = torch.tensor([-4.0, -1.0, -9.0], dtype=torch.float64)


class Golden(NamedTuple):
    hyperparameters: dict  # overrides of the objective's defaults
    losses: tuple[float, float, float]
    chosen_rewards: tuple[float, float, float]
    rejected_rewards: tuple[float, float, float]
    metrics: dict = {}  # name -> per-row values, where a diagnostic is part of the maths


# Rewards every objective reports, per row: G (SynPO, v1, v2, v5), A (v3, v4), r (IPO; KTO with beta = 1), beta r (DPO, DPOP, beta = 0.1).
G_REWARDS = {"chosen_rewards": (0.4, 0.2, 0.5), "rejected_rewards": (0.1, 0.9, 0.2297396710)}
A_REWARDS = {"chosen_rewards": (0.5, 0.2, 0.5625), "rejected_rewards": (0.1, 0.9, 0.28)}
R_CHOSEN, R_REJECTED = (0.1674185363, 0.6716862627, -0.7725887222), (-0.6051701860, 0.8946394843, 1.6459576184)
BETA_R_REWARDS = {"chosen_rewards": tuple(0.1 * r for r in R_CHOSEN), "rejected_rewards": tuple(0.1 * r for r in R_REJECTED)}

GOLDEN = {
    # Eq. 4, alpha = 2, beta = 0.2 (default). alpha (G_w - G_l) = 2 (0.4 - 0.1, 0.2 - 0.9, 0.5 - 0.2297397) = (0.6, -1.4, 0.5405207);
    # sigmoid -> (0.6456563, 0.1978161, 0.6319335);  beta A_w = 0.2 (0.5, 0.2, 0.5625) = (0.1, 0.04, 0.1125);
    # L = -(0.6456563 + 0.1, 0.1978161 + 0.04, 0.6319335 + 0.1125) = (-0.7456563, -0.2378161, -0.7444335). Rewards G.
    "synpo": Golden({"alpha": 2.0}, (-0.7456563062, -0.2378161114, -0.7444335277), **G_REWARDS),
    # v1 (beta = 0 default): L = -sigmoid(0.6, -1.4, 0.5405207) = (-0.6456563, -0.1978161, -0.6319335). Rewards G.
    "synpo_v1": Golden({"alpha": 2.0}, (-0.6456563062, -0.1978161114, -0.6319335277), **G_REWARDS),
    # v2: beta M_w = 0.2 (-0.9162907, -1.6094379, -0.6931472) = (-0.1832581, -0.3218876, -0.1386294);
    # L = -sigmoid(.) - beta M_w = (-0.6456563 + 0.1832581, -0.1978161 + 0.3218876, -0.6319335 + 0.1386294)
    #   = (-0.4623982, 0.1240715, -0.4933041). Rewards G.
    "synpo_v2": Golden({"alpha": 2.0}, (-0.4623981599, 0.1240714710, -0.4933040916), **G_REWARDS),
    # v3: alpha (A_w - A_l) = 2 (0.5 - 0.1, 0.2 - 0.9, 0.5625 - 0.28) = (0.8, -1.4, 0.565);
    # sigmoid -> (0.6899745, 0.1978161, 0.6376087);
    # L = -(0.6899745 + 0.1, 0.1978161 + 0.04, 0.6376087 + 0.1125) = (-0.7899745, -0.2378161, -0.7501087). Rewards A.
    "synpo_v3": Golden({"alpha": 2.0}, (-0.7899744811, -0.2378161114, -0.7501086526), **A_REWARDS),
    # v4: v3's sigmoid, v2's language term: (-0.6899745 + 0.1832581, -0.1978161 + 0.3218876, -0.6376087 + 0.1386294)
    #   = (-0.5067163, 0.1240715, -0.4989792). Rewards A.
    "synpo_v4": Golden({"alpha": 2.0}, (-0.5067163348, 0.1240714710, -0.4989792165), **A_REWARDS),
    # v5 (defaults alpha = 1, beta = 0.1), no sigmoid: -(G_w - G_l) - 0.1 A_w = (-0.3 - 0.05, 0.7 - 0.02, -0.2702603 - 0.05625)
    #   = (-0.35, 0.68, -0.3265103). Rewards G.
    "synpo_v5": Golden({}, (-0.35, 0.68, -0.3265103290), **G_REWARDS),
    # beta = 0.1: beta (r_w - r_l) = 0.1 (0.1674185 + 0.6051702, 0.6716863 - 0.8946395, -0.7725887 - 1.6459576)
    #   = (0.0772589, -0.0222953, -0.2418546);  L = -log sigmoid(.) = (0.6552637, 0.7043570, 0.8213685). Rewards beta r.
    "dpo": Golden({}, (0.6552636756, 0.7043569755, 0.8213684544), **BETA_R_REWARDS),
    # tau = 0.1, 1/(2 tau) = 5: h = r_w - r_l = (0.7725887, -0.2229532, -2.4185463);
    # L = (h - 5)^2 = ((-4.2274113)^2, (-5.2229532)^2, (-7.4185463)^2) = (17.8710061, 27.2792404, 55.0348298). Rewards r.
    "ipo": Golden({}, (17.8710061113, 27.2792403555, 55.0348298081), R_CHOSEN, R_REJECTED),
    # beta = 0.1, lambda = 1. Rewards beta log pi: chosen (-0.1832581, -0.4828314, -0.2772589), rejected (-0.4605170, -0.0105361, -0.7354042);
    # their difference (0.2772589, -0.4722953, 0.4581454) -> -log sigmoid = (0.5640962, 0.9569223, 0.4900853);
    # NLL_w = -M_w = (0.9162907, 1.6094379, 0.6931472);  L = (1.4803869, 2.5663603, 1.1832325).
    "cpo": Golden(
        {},
        (1.4803869154, 2.5663602514, 1.1832325232),
        (-0.1832581464, -0.4828313737, -0.2772588722),
        (-0.4605170186, -0.0105360516, -0.7354042382),
    ),
    # beta = 0.1, lambda = 50: shortfall = max(0, log pi_ref(y_w) - log pi(y_w)) = (0, 0, -2.0 + 2.7725887) = (0, 0, 0.7725887);
    # rows 0, 1 as DPO; row 2: -0.7725887 - 1.6459576 - 50 * 0.7725887 = -41.0479825;  L = -log sigmoid(-4.1047982) = 4.1211571.
    # Rewards beta r (no penalty in them).
    "dpop": Golden({}, (0.6552636756, 0.7043569755, 4.1211570534), **BETA_R_REWARDS, metrics={"dpop_shortfall": (0.0, 0.0, 0.7725887222)}),
    # beta = 1, lambda_w = 1, lambda_l = 0.5. z_ref = max(0, mean of all six r)
    #   = (0.1674185 + 0.6716863 - 0.7725887 - 0.6051702 + 0.8946395 + 1.6459576) / 6 = 2.0019430 / 6 = 0.3336572,
    #   one value for the whole batch (per row it would be (0, 0.7831629, 0.4366844));
    # chosen:   1 - sigmoid(r_w - z) = 1 - sigmoid(-0.1662386, 0.3380291, -1.1062459) = (0.5414642, 0.4162883, 0.7514286);
    # rejected: 0.5 (1 - sigmoid(z - r_l)) = 0.5 (1 - sigmoid(0.9388274, -0.5609823, -1.3123005)) = (0.1405686, 0.3183399, 0.3939489);
    # L = (0.6820328, 0.7346282, 1.1453775). Rewards beta r = r.
    "kto": Golden(
        {"beta": 1.0, "rejected_weight": 0.5},
        (0.6820328482, 0.7346282119, 1.1453774918),
        R_CHOSEN,
        R_REJECTED,
        metrics={"kto_z_ref": (0.3336571656,) * 3},
    ),
    # beta = 2, gamma = 1. Rewards 2 M: chosen (-1.8325815, -3.2188758, -1.3862944), rejected (-4.6051702, -0.2107210, -2.9416170);
    # 2 M_w - 2 M_l - 1 = (1.7725887, -4.0081548, 0.5553226);  L = -log sigmoid(.) = (0.1569120, 4.0261586, 0.4535484).
    "simpo": Golden(
        {},
        (0.1569119619, 4.0261586334, 0.4535484195),
        (-1.8325814637, -3.2188758249, -1.3862943611),
        (-4.6051701860, -0.2107210313, -2.9416169526),
    ),
    # L = -M_w = (0.9162907, 1.6094379, 0.6931472). Rewards M (the rejected one is only monitored).
    "sft": Golden(
        {},
        (0.9162907319, 1.6094379124, 0.6931471806),
        (-0.9162907319, -1.6094379124, -0.6931471806),
        (-2.3025850930, -0.1053605157, -1.4708084763),
    ),
}


def test_every_objective_has_a_golden_batch():
    assert set(GOLDEN) == set(OBJECTIVES)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_batch(name):
    """Per-row losses and rewards ``[B]`` on the ragged batch, through ``compute_loss`` and the objective's registered defaults."""
    golden = GOLDEN[name]
    objective = get_objective(name)
    references = (REF_CHOSEN, REF_REJECTED) if objective.needs_reference else ()
    out = compute_loss(objective, golden.hyperparameters, *ragged_batch(), *references)
    assert out.losses.shape == out.chosen_rewards.shape == out.rejected_rewards.shape == (3,)
    expected = {"losses": golden.losses, "chosen_rewards": golden.chosen_rewards, "rejected_rewards": golden.rejected_rewards}
    for field, values in expected.items():
        torch.testing.assert_close(getattr(out, field), torch.tensor(values, dtype=torch.float64), rtol=0, atol=1e-9, msg=f"{name} {field}")
    for metric, values in golden.metrics.items():
        torch.testing.assert_close(out.metrics[metric], torch.tensor(values, dtype=torch.float64), rtol=0, atol=1e-9, msg=f"{name} {metric}")


def test_synpo_rejects_unknown_variant():
    with pytest.raises(ValueError, match="unknown SynPO variant 'v9'"):
        synpo_loss(*ragged_batch(), variant="v9")


def _call(name, logps_w, mask_w, logps_l, mask_l):
    objective = get_objective(name)
    references = (REF_CHOSEN, REF_REJECTED) if objective.needs_reference else (None, None)  # B = 3
    return compute_loss(objective, {}, logps_w, mask_w, logps_l, mask_l, *references)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_masked_positions_never_change_a_loss(name):
    """Property: whatever sits at masked positions (garbage, inf, nan) and however much padding, the loss is unchanged."""
    generator = torch.Generator().manual_seed(0)
    for trial in range(20):
        batch, length_w, length_l = 3, 5, 7
        logps_w = -torch.rand(batch, length_w, generator=generator, dtype=torch.float64) * 3
        logps_l = -torch.rand(batch, length_l, generator=generator, dtype=torch.float64) * 3
        mask_w = torch.rand(batch, length_w, generator=generator) < 0.7
        mask_l = torch.rand(batch, length_l, generator=generator) < 0.7
        mask_w[:, 0] = True
        mask_l[:, 0] = True
        base = _call(name, logps_w, mask_w, logps_l, mask_l).losses
        junk = [float("nan"), float("-inf"), 1e6][trial % 3]
        noisy_w = torch.where(mask_w, logps_w, torch.full_like(logps_w, junk))
        noisy_l = torch.where(mask_l, logps_l, torch.full_like(logps_l, junk))
        padded_w = torch.cat([noisy_w, torch.full((batch, 4), junk, dtype=torch.float64)], dim=1)
        padded_mask_w = torch.cat([mask_w, torch.zeros(batch, 4, dtype=torch.bool)], dim=1)
        again = _call(name, padded_w, padded_mask_w, noisy_l, mask_l).losses
        assert torch.equal(base, again), (name, trial)


def test_synpo_gradcheck_float64():
    logps_w = (-torch.rand(2, 4, dtype=torch.float64) - 0.1).requires_grad_()
    logps_l = (-torch.rand(2, 3, dtype=torch.float64) - 0.1).requires_grad_()
    mask_w = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    mask_l = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    for variant in ("synpo", "v1", "v2", "v3", "v4", "v5"):
        assert torch.autograd.gradcheck(
            lambda w, lo, variant=variant: synpo_loss(w, mask_w, lo, mask_l, alpha=5.0, beta=0.2, variant=variant).losses, (logps_w, logps_l)
        )


def test_synpo_gradient_raises_chosen_and_lowers_rejected_token_probabilities():
    """dL/dlog p_t < 0 on every chosen token (descent raises it) and > 0 on every rejected token (descent lowers it);
    masked positions get exactly zero gradient."""
    logps_w = torch.log(torch.tensor([[0.3, 0.6, 0.5]], dtype=torch.float64)).requires_grad_()
    logps_l = torch.log(torch.tensor([[0.4, 0.2, 0.9]], dtype=torch.float64)).requires_grad_()
    mask_l = torch.tensor([[True, True, False]])
    synpo_loss(logps_w, torch.ones(1, 3, dtype=torch.bool), logps_l, mask_l).losses.sum().backward()
    assert (logps_w.grad < 0).all()
    assert (logps_l.grad[mask_l] > 0).all() and logps_l.grad[0, 2] == 0


def test_reference_needed_and_unknown_hyperparameters_are_errors():
    assert {name for name, objective in OBJECTIVES.items() if objective.needs_reference} == {"dpo", "ipo", "dpop", "kto"}
    with pytest.raises(ValueError, match="needs reference log-probabilities"):
        compute_loss(get_objective("dpo"), {}, *ragged_batch())
    with pytest.raises(ValueError, match="has no hyperparameter"):
        compute_loss(get_objective("synpo"), {"gamma": 1.0}, *ragged_batch())
    with pytest.raises(ValueError, match="unknown objective 'ppo'"):
        get_objective("ppo")


def test_empty_response_is_an_error():
    chosen, chosen_mask, rejected, rejected_mask = ragged_batch()
    chosen_mask[1] = False
    with pytest.raises(ValueError, match=re.escape("rows [1] have no response tokens")):
        synpo_loss(chosen, chosen_mask, rejected, rejected_mask)
