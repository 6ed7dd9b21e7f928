"""Preference objectives as pure functions of per-token log-probabilities.

``OBJECTIVES`` maps each objective name a config may give to its loss function, its default
hyperparameters and whether it needs reference log-probabilities (the trainer skips the reference
pass when it does not — SynPO's main speed advantage). What an objective *is* follows from its name
alone: SynPO's variants are separate entries with the variant bound into the loss function, so no
hyperparameter can turn ``synpo_v1`` into another objective. Hyperparameters are numbers only.

    objective = get_objective("dpo").configure({"beta": 0.2})   # validated here, once
    output = objective(chosen_logps, chosen_mask, rejected_logps, rejected_mask, ref_chosen, ref_rejected)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import torch

from synpo.losses.baselines import cpo_loss, dpo_loss, dpop_loss, ipo_loss, kto_loss, sft_loss, simpo_loss
from synpo.losses.common import LossOutput
from synpo.losses.synpo import synpo_loss


@dataclass(frozen=True)
class Objective:
    name: str
    loss: Callable[..., LossOutput]
    needs_reference: bool
    defaults: dict[str, float] = field(default_factory=dict)

    def check_names(self, hyperparameters: Mapping[str, object]) -> None:
        """Unknown hyperparameter names are an error naming what the objective takes."""
        unknown = sorted(set(hyperparameters) - set(self.defaults))
        if unknown:
            hint = "; SynPO's variants are objectives of their own (e.g. objective=synpo_v3)" if "variant" in unknown else ""
            raise ValueError(f"objective {self.name!r} has no hyperparameter(s) {unknown}; it takes {sorted(self.defaults) or 'none'}{hint}")

    def configure(self, hyperparameters: Mapping[str, float]) -> ConfiguredObjective:
        """This objective with ``hyperparameters`` overriding its defaults; unknown names are an error."""
        self.check_names(hyperparameters)
        return ConfiguredObjective(self, {**self.defaults, **{key: float(value) for key, value in hyperparameters.items()}})


@dataclass(frozen=True)
class ConfiguredObjective:
    """An objective with every hyperparameter fixed: call it on one batch's log-probabilities."""

    objective: Objective
    hyperparameters: dict[str, float]

    @property
    def name(self) -> str:
        return self.objective.name

    @property
    def needs_reference(self) -> bool:
        return self.objective.needs_reference

    def __call__(
        self,
        chosen_logps: torch.Tensor,
        chosen_mask: torch.Tensor,
        rejected_logps: torch.Tensor,
        rejected_mask: torch.Tensor,
        ref_chosen_logp: torch.Tensor | None = None,
        ref_rejected_logp: torch.Tensor | None = None,
    ) -> LossOutput:
        loss = self.objective.loss
        if not self.needs_reference:
            return loss(chosen_logps, chosen_mask, rejected_logps, rejected_mask, **self.hyperparameters)
        if ref_chosen_logp is None or ref_rejected_logp is None:
            raise ValueError(f"objective {self.name!r} needs reference log-probabilities")
        return loss(chosen_logps, chosen_mask, rejected_logps, rejected_mask, ref_chosen_logp, ref_rejected_logp, **self.hyperparameters)


def _synpo(variant: str, alpha: float, beta: float) -> Objective:
    name = "synpo" if variant == "synpo" else f"synpo_{variant}"
    return Objective(name, partial(synpo_loss, variant=variant), False, {"alpha": alpha, "beta": beta})


OBJECTIVES: dict[str, Objective] = {
    objective.name: objective
    for objective in (
        _synpo("synpo", alpha=30.0, beta=0.2),
        _synpo("v1", alpha=30.0, beta=0.0),
        _synpo("v2", alpha=30.0, beta=0.2),
        _synpo("v3", alpha=30.0, beta=0.2),
        _synpo("v4", alpha=30.0, beta=0.2),
        _synpo("v5", alpha=1.0, beta=0.1),
        Objective("dpo", dpo_loss, True, {"beta": 0.1}),
        Objective("ipo", ipo_loss, True, {"tau": 0.1}),
        Objective("cpo", cpo_loss, False, {"beta": 0.1, "nll_weight": 1.0}),
        Objective("dpop", dpop_loss, True, {"beta": 0.1, "penalty": 50.0}),
        Objective("kto", kto_loss, True, {"beta": 0.1, "chosen_weight": 1.0, "rejected_weight": 1.0}),
        Objective("simpo", simpo_loss, False, {"beta": 2.0, "gamma": 1.0}),
        Objective("sft", sft_loss, False, {}),
    )
}


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def compute_loss(
    objective: Objective,
    hyperparameters: Mapping[str, float],
    chosen_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_logps: torch.Tensor,
    rejected_mask: torch.Tensor,
    ref_chosen_logp: torch.Tensor | None = None,
    ref_rejected_logp: torch.Tensor | None = None,
) -> LossOutput:
    """One call of ``objective`` with its defaults overridden by ``hyperparameters`` (configure + call)."""
    return objective.configure(hyperparameters)(chosen_logps, chosen_mask, rejected_logps, rejected_mask, ref_chosen_logp, ref_rejected_logp)


__all__ = [
    "OBJECTIVES",
    "ConfiguredObjective",
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
