"""Golden values for every objective, worked out by hand.

One pair is used throughout (B = 1):

    chosen   y_w: token probabilities (0.8, 0.2)          rejected y_l: (0.1, 0.1, <pad>)
    M(y_w) = (log .8 + log .2) / 2 = log .4 = -0.9162907    M(y_l) = log .1
    G(y_w) = exp(M) = 0.4,  A(y_w) = (0.8 + 0.2) / 2 = 0.5  G(y_l) = A(y_l) = 0.1
    log pi(y_w) = log .16 = -1.8325815                        log pi(y_l) = 2 log .1 = -4.6051702
    reference:  log pi_ref(y_w) = -2.0,  log pi_ref(y_l) = -4.0
    r(y_w) = -1.8325815 + 2.0 = 0.1674185                    r(y_l) = -4.6051702 + 4.0 = -0.6051702
"""

import math

import pytest
import torch

from synpo.losses import OBJECTIVES, compute_loss, get_objective
from synpo.losses.baselines import cpo_loss, dpo_loss, dpop_loss, ipo_loss, kto_loss, sft_loss, simpo_loss
from synpo.losses.synpo import synpo_loss


def pair(dtype=torch.float64):
    chosen = torch.tensor([[math.log(0.8), math.log(0.2)]], dtype=dtype)
    chosen_mask = torch.ones(1, 2, dtype=torch.bool)
    rejected = torch.tensor([[math.log(0.1), math.log(0.1), -123.0]], dtype=dtype)  # last position is padding
    rejected_mask = torch.tensor([[True, True, False]])
    return chosen, chosen_mask, rejected, rejected_mask


REF_CHOSEN = torch.tensor([-2.0], dtype=torch.float64)
REF_REJECTED = torch.tensor([-4.0], dtype=torch.float64)


def test_synpo_eq4_golden():
    """alpha = 2, beta = 0.2:  L = -[sigmoid(2 (0.4 - 0.1)) + 0.2 * 0.5] = -(sigmoid(0.6) + 0.1)
    = -(0.6456563 + 0.1) = -0.7456563. Rewards are G: 0.4 and 0.1."""
    out = synpo_loss(*pair(), alpha=2.0, beta=0.2)
    assert out.losses.item() == pytest.approx(-0.7456563062, abs=1e-9)
    assert out.chosen_rewards.item() == pytest.approx(0.4) and out.rejected_rewards.item() == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        # v1: -sigmoid(0.6) = -0.6456563
        ("v1", -0.6456563062),
        # v2: -sigmoid(0.6) - 0.2 * log .4 = -0.6456563 + 0.1832581 = -0.4623982
        ("v2", -0.4623981599),
        # v3: -sigmoid(2 (0.5 - 0.1)) - 0.2 * 0.5 = -sigmoid(0.8) - 0.1 = -0.6899745 - 0.1 = -0.7899745
        ("v3", -0.7899744811),
        # v4: -sigmoid(0.8) - 0.2 * log .4 = -0.6899745 + 0.1832581 = -0.5067163
        ("v4", -0.5067163348),
        # v5: -(2 (0.4 - 0.1)) - 0.2 * 0.5 = -0.6 - 0.1 = -0.7
        ("v5", -0.7),
    ],
)
def test_synpo_variants_golden(variant, expected):
    assert synpo_loss(*pair(), alpha=2.0, beta=0.2, variant=variant).losses.item() == pytest.approx(expected, abs=1e-9)


def test_synpo_rejects_unknown_variant():
    with pytest.raises(ValueError, match="unknown SynPO variant 'v9'"):
        synpo_loss(*pair(), variant="v9")


def test_dpo_golden():
    """beta = 0.1: margin = 0.1 (0.1674185 + 0.6051702) = 0.0772589; L = -log sigmoid(0.0772589) = 0.6552637."""
    out = dpo_loss(*pair(), REF_CHOSEN, REF_REJECTED, beta=0.1)
    assert out.losses.item() == pytest.approx(0.6552636756, abs=1e-9)
    assert out.chosen_rewards.item() == pytest.approx(0.01674185, abs=1e-8)


def test_ipo_golden():
    """tau = 0.1: h = 0.1674185 + 0.6051702 = 0.7725887; L = (0.7725887 - 1/(2 * 0.1))^2 = (-4.2274113)^2 = 17.8710061."""
    assert ipo_loss(*pair(), REF_CHOSEN, REF_REJECTED, tau=0.1).losses.item() == pytest.approx(17.8710061113, abs=1e-8)


def test_cpo_golden():
    """beta = 0.1, lambda = 1: -log sigmoid(0.1 (-1.8325815 + 4.6051702)) = -log sigmoid(0.2772589) = 0.5640962;
    NLL(y_w) = -log .4 = 0.9162907; L = 1.4803869."""
    assert cpo_loss(*pair(), beta=0.1, nll_weight=1.0).losses.item() == pytest.approx(1.4803869154, abs=1e-9)


def test_dpop_golden_without_and_with_penalty():
    """Penalty off (log pi(y_w) = -1.83 > ref -2.0): same as DPO, 0.6552637.
    With ref(y_w) = -1.5: shortfall = -1.5 + 1.8325815 = 0.3325815; r(y_w) = -0.3325815;
    inner = -0.3325815 + 0.6051702 - 50 * 0.3325815 = -16.3564845; L = -log sigmoid(0.1 * -16.3564845) = 1.8136490."""
    assert dpop_loss(*pair(), REF_CHOSEN, REF_REJECTED).losses.item() == pytest.approx(0.6552636756, abs=1e-9)
    penalised = dpop_loss(*pair(), torch.tensor([-1.5], dtype=torch.float64), REF_REJECTED, beta=0.1, penalty=50.0)
    assert penalised.losses.item() == pytest.approx(1.8136490113, abs=1e-9)


def test_kto_golden():
    """beta = 0.1: z_ref = 0.1 * max(0, (0.1674185 - 0.6051702) / 2) = 0;
    L = (1 - sigmoid(0.01674185)) + (1 - sigmoid(0.06051702)) = 0.4958146 + 0.4848754 = 0.9806900."""
    assert kto_loss(*pair(), REF_CHOSEN, REF_REJECTED, beta=0.1).losses.item() == pytest.approx(0.9806899953, abs=1e-9)


def test_simpo_golden():
    """beta = 2, gamma = 1: 2 log .4 - 2 log .1 - 1 = -1.8325815 + 4.6051702 - 1 = 1.7725887;
    L = -log sigmoid(1.7725887) = 0.1569120."""
    assert simpo_loss(*pair(), beta=2.0, gamma=1.0).losses.item() == pytest.approx(0.1569119619, abs=1e-9)


def test_sft_golden():
    """L = -M(y_w) = -log .4 = 0.9162907."""
    assert sft_loss(*pair()).losses.item() == pytest.approx(0.9162907319, abs=1e-9)


def _call(name, logps_w, mask_w, logps_l, mask_l):
    objective = get_objective(name)
    references = (REF_CHOSEN.expand(logps_w.shape[0]), REF_REJECTED.expand(logps_w.shape[0])) if objective.needs_reference else (None, None)
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
        compute_loss(get_objective("dpo"), {}, *pair())
    with pytest.raises(ValueError, match="has no hyperparameter"):
        compute_loss(get_objective("synpo"), {"gamma": 1.0}, *pair())
    with pytest.raises(ValueError, match="unknown objective 'ppo'"):
        get_objective("ppo")


def test_empty_response_is_an_error():
    chosen, _, rejected, rejected_mask = pair()
    with pytest.raises(ValueError, match="no response tokens"):
        synpo_loss(chosen, torch.zeros(1, 2, dtype=torch.bool), rejected, rejected_mask)
