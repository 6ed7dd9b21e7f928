"""Preference objectives as pure functions of per-token log-probabilities.

``OBJECTIVES`` maps each objective name a config may give to its loss function, its default
hyperparameters and whether it needs reference log-probabilities (the trainer skips the reference
pass when it does not — SynPO's main speed advantage).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from synpo.losses.baselines import cpo_loss, dpo_loss, dpop_loss, ipo_loss, kto_loss, sft_loss, simpo_loss
from synpo.losses.common import LossOutput
from synpo.losses.synpo import synpo_loss


@dataclass(frozen=True)
class Objective:
    name: str
    loss: Callable[..., LossOutput]
    needs_reference: bool
    defaults: dict[str, float | str] = field(default_factory=dict)


OBJECTIVES: dict[str, Objective] = {
    "synpo": Objective("synpo", synpo_loss, False, {"alpha": 30.0, "beta": 0.2, "variant": "synpo"}),
    "synpo_v1": Objective("synpo_v1", synpo_loss, False, {"alpha": 30.0, "beta": 0.0, "variant": "v1"}),
    "synpo_v2": Objective("synpo_v2", synpo_loss, False, {"alpha": 30.0, "beta": 0.2, "variant": "v2"}),
    "synpo_v3": Objective("synpo_v3", synpo_loss, False, {"alpha": 30.0, "beta": 0.2, "variant": "v3"}),
    "synpo_v4": Objective("synpo_v4", synpo_loss, False, {"alpha": 30.0, "beta": 0.2, "variant": "v4"}),
    "synpo_v5": Objective("synpo_v5", synpo_loss, False, {"alpha": 1.0, "beta": 0.1, "variant": "v5"}),
    "dpo": Objective("dpo", dpo_loss, True, {"beta": 0.1}),
    "ipo": Objective("ipo", ipo_loss, True, {"tau": 0.1}),
    "cpo": Objective("cpo", cpo_loss, False, {"beta": 0.1, "nll_weight": 1.0}),
    "dpop": Objective("dpop", dpop_loss, True, {"beta": 0.1, "penalty": 50.0}),
    "kto": Objective("kto", kto_loss, True, {"beta": 0.1, "chosen_weight": 1.0, "rejected_weight": 1.0}),
    "simpo": Objective("simpo", simpo_loss, False, {"beta": 2.0, "gamma": 1.0}),
    "sft": Objective("sft", sft_loss, False, {}),
}


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def compute_loss(
    objective: Objective,
    hyperparameters: dict[str, float | str],
    chosen_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_logps: torch.Tensor,
    rejected_mask: torch.Tensor,
    ref_chosen_logp: torch.Tensor | None = None,
    ref_rejected_logp: torch.Tensor | None = None,
) -> LossOutput:
    """Call ``objective``'s loss with its defaults overridden by ``hyperparameters``."""
    unknown = set(hyperparameters) - set(objective.defaults)
    if unknown:
        raise ValueError(
            f"objective {objective.name!r} has no hyperparameter(s) {sorted(unknown)}; it takes {sorted(objective.defaults) or 'none'}"
        )
    arguments = {**objective.defaults, **hyperparameters}
    if objective.needs_reference:
        if ref_chosen_logp is None or ref_rejected_logp is None:
            raise ValueError(f"objective {objective.name!r} needs reference log-probabilities")
        return objective.loss(chosen_logps, chosen_mask, rejected_logps, rejected_mask, ref_chosen_logp, ref_rejected_logp, **arguments)
    return objective.loss(chosen_logps, chosen_mask, rejected_logps, rejected_mask, **arguments)


__all__ = [
    "OBJECTIVES",
    "LossOutput",
    "Objective",
    "compute_loss",
    "cpo_loss",
    "dpo_loss",
    "dpop_loss",
    "get_objective",
    "ipo_loss",
    "kto_loss",
    "sft_loss",
    "simpo_loss",
    "synpo_loss",
]
