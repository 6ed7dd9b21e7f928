"""Gated promotion: the serving alias moves to a candidate version only when its evaluation says so.

    decision = decide(candidate_metrics, champion_metrics, policy)     # pure: promote or not, and why
    if decision.promote:
        move_alias(client, name, candidate_version, expected_holder, decision, policy.alias)
    rollback(client, name, policy.alias)                              # the previous holder back

``decide`` compares the candidate with the alias holder on the same eval set: the primary metric must
improve by at least ``min_improvement`` and no guard metric may regress by more than its
tolerance. A first version (no holder) is promoted if it clears the absolute ``floors``. Metrics
named in ``lower_is_better`` (hallucination rates) count downwards.

``move_alias`` re-reads the holder first and refuses if it changed since the decision was taken (two
promotions racing on one alias: one wins, the other is told why). The old holder keeps the
``previous`` alias, and the new version is tagged with the decision. The alias is read back after
the move, so a promotion that lost a race in between is reported, not assumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pydantic

from synpo.config.base import StrictModel
from synpo.errors import UserError

PREVIOUS = "previous"


class PromotionError(UserError):
    """The alias could not be moved as decided (it changed under us, or there is nothing to roll back to)."""


class PromotionPolicy(StrictModel):
    """When a candidate may take the serving alias."""

    alias: str = pydantic.Field(default="champion", pattern=r"^[A-Za-z0-9_-]+$", description="the serving alias")
    primary: str = pydantic.Field(default="CIDEr", description="metric that must improve")
    min_improvement: float = pydantic.Field(default=0.0, ge=0, description="by at least this much (absolute, in the metric's units)")
    guards: dict[str, float] = pydantic.Field(
        default_factory=lambda: {"facts/hallucination_rate": 0.02},
        description="metric -> largest regression tolerated (absolute); a guard the candidate lacks is skipped",
    )
    floors: dict[str, float] = pydantic.Field(
        default_factory=dict, description="first version ever: metric -> the value it must reach (upper bound for lower-is-better metrics)"
    )
    lower_is_better: list[str] = pydantic.Field(
        default_factory=lambda: ["facts/hallucination_rate"], description="metrics where smaller is better"
    )


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    checks: list[str] = field(default_factory=list)  # one line per comparison made


def _gain(policy: PromotionPolicy, metric: str, candidate: float, holder: float) -> float:
    """How much better the candidate is (negative: worse), in the metric's direction."""
    return holder - candidate if metric in policy.lower_is_better else candidate - holder


def _value(metrics: dict[str, float], metric: str, who: str) -> float:
    value = metrics.get(metric)
    if value is None or math.isnan(value):
        raise PromotionError(f"the {who}'s evaluation has no {metric!r} (it has: {', '.join(sorted(metrics)) or 'nothing'})")
    return value


def decide(candidate: dict[str, float], holder: dict[str, float] | None, policy: PromotionPolicy) -> Decision:
    """Promote or not, with the reason and every check made."""
    if holder is None:
        checks, failed = [], []
        for metric, floor in sorted(policy.floors.items()):
            value = _value(candidate, metric, "candidate")
            passed = value <= floor if metric in policy.lower_is_better else value >= floor
            checks.append(f"{metric} {value:.4f} {'<=' if metric in policy.lower_is_better else '>='} floor {floor:.4f}: {'ok' if passed else 'FAILS'}")
            failed += [] if passed else [metric]
        if failed:
            return Decision(False, f"first version: below the floor on {', '.join(failed)}", checks)
        return Decision(True, "first version: no alias holder, and every floor is met" if policy.floors else "first version: no alias holder", checks)
    gain = _gain(policy, policy.primary, _value(candidate, policy.primary, "candidate"), _value(holder, policy.primary, "holder"))
    checks = [f"{policy.primary}: {candidate[policy.primary]:.4f} vs {holder[policy.primary]:.4f} (gain {gain:+.4f}, needs >= {policy.min_improvement:+.4f})"]
    regressions = []
    for metric, tolerance in sorted(policy.guards.items()):
        if metric not in candidate or metric not in holder:
            checks.append(f"guard {metric}: not measured for both, skipped")
            continue
        change = _gain(policy, metric, candidate[metric], holder[metric])
        checks.append(f"guard {metric}: {candidate[metric]:.4f} vs {holder[metric]:.4f} (change {change:+.4f}, tolerance {-tolerance:+.4f})")
        if change < -tolerance:
            regressions.append(metric)
    if gain < policy.min_improvement or (policy.min_improvement == 0 and gain <= 0):
        return Decision(False, f"{policy.primary} does not improve enough ({gain:+.4f})", checks)
    if regressions:
        return Decision(False, f"{policy.primary} improves ({gain:+.4f}) but {', '.join(regressions)} regresses beyond tolerance", checks)
    return Decision(True, f"{policy.primary} improves by {gain:+.4f} and no guard regresses", checks)


def alias_holder(client, name: str, alias: str) -> str | None:
    """The version ``alias`` points to, or None when it points nowhere (read from the registered model's aliases)."""
    holder = client.get_registered_model(name).aliases.get(alias)
    return None if holder is None else str(holder)


def move_alias(client, name: str, version: str, expected_holder: str | None, decision: Decision, alias: str) -> None:
    """Point ``alias`` at ``version`` if it still points at ``expected_holder``; the old holder becomes ``previous``."""
    current = alias_holder(client, name, alias)
    if current != expected_holder:
        raise PromotionError(
            f"{name}@{alias} moved to version {current} since the decision (taken against version {expected_holder}); "
            "nothing changed: evaluate against the new holder and decide again"
        )
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current)
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "synpo.promotion", decision.reason)
    client.set_model_version_tag(name, version, "synpo.promoted_over", current or "none")
    after = alias_holder(client, name, alias)
    if after != version:
        raise PromotionError(f"{name}@{alias} points at version {after} right after moving it to {version}: another promotion raced this one")


def rollback(client, name: str, alias: str) -> str:
    """Point ``alias`` back at the ``previous`` holder (which then stops being ``previous``); returns that version."""
    previous = alias_holder(client, name, PREVIOUS)
    if previous is None:
        raise PromotionError(f"{name} has no {PREVIOUS!r} alias: nothing to roll {alias!r} back to")
    demoted = alias_holder(client, name, alias)
    client.set_registered_model_alias(name, alias, previous)
    client.delete_registered_model_alias(name, PREVIOUS)
    if demoted is not None:
        client.set_model_version_tag(name, demoted, "synpo.rolled_back_from", alias)
    return previous
