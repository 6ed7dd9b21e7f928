"""Gated promotion: the decision both ways, the alias history after promote and rollback, and a lost race."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from synpo.registry.promotion import (
    PREVIOUS,
    Decision,
    PromotionError,
    PromotionPolicy,
    alias_holder,
    decide,
    move_alias,
    rollback,
)

POLICY = PromotionPolicy(primary="CIDEr", min_improvement=0.05, guards={"facts/hallucination_rate": 0.02, "METEOR": 0.01})


def test_promotes_only_a_big_enough_gain_without_guard_regressions():
    holder = {"CIDEr": 1.00, "METEOR": 0.30, "facts/hallucination_rate": 0.20}
    better = decide({**holder, "CIDEr": 1.10, "facts/hallucination_rate": 0.15}, holder, POLICY)
    assert better.promote and "improves by +0.1000" in better.reason
    assert not decide({**holder, "CIDEr": 1.04}, holder, POLICY).promote  # +0.04 < the 0.05 margin
    hallucinates = decide({**holder, "CIDEr": 1.50, "facts/hallucination_rate": 0.23}, holder, POLICY)
    assert not hallucinates.promote and "facts/hallucination_rate regresses" in hallucinates.reason  # lower is better: +0.03 > 0.02
    tolerated = decide({**holder, "CIDEr": 1.50, "facts/hallucination_rate": 0.215, "METEOR": 0.295}, holder, POLICY)
    assert tolerated.promote, tolerated.checks
    equal = decide(holder, holder, PromotionPolicy(primary="CIDEr"))
    assert not equal.promote  # no margin set: it must still be strictly better


def test_first_version_needs_its_floors_and_missing_metrics_are_errors():
    policy = PromotionPolicy(floors={"CIDEr": 0.5, "facts/hallucination_rate": 0.3})
    assert decide({"CIDEr": 0.6, "facts/hallucination_rate": 0.2}, None, policy).promote
    refused = decide({"CIDEr": 0.6, "facts/hallucination_rate": 0.4}, None, policy)
    assert not refused.promote and refused.reason == "first version: below the floor on facts/hallucination_rate"
    with pytest.raises(PromotionError, match="the holder's evaluation has no 'CIDEr'"):
        decide({"CIDEr": 1.0}, {"METEOR": 0.3}, policy)


@pytest.fixture
def client(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    client.create_registered_model("cap")
    for _ in range(3):
        client.create_model_version("cap", source=str(tmp_path / "model"))
    return client


def test_promote_promote_rollback_keeps_the_alias_history(client):
    yes = Decision(True, "test")
    move_alias(client, "cap", "1", None, yes, "champion")
    assert (alias_holder(client, "cap", "champion"), alias_holder(client, "cap", PREVIOUS)) == ("1", None)
    move_alias(client, "cap", "2", "1", Decision(True, "CIDEr improves by +0.1"), "champion")
    assert (alias_holder(client, "cap", "champion"), alias_holder(client, "cap", PREVIOUS)) == ("2", "1")
    tags = client.get_model_version("cap", "2").tags
    assert tags["synpo.promotion"] == "CIDEr improves by +0.1" and tags["synpo.promoted_over"] == "1"
    assert rollback(client, "cap", "champion") == "1"
    assert (alias_holder(client, "cap", "champion"), alias_holder(client, "cap", PREVIOUS)) == ("1", None)
    assert client.get_model_version("cap", "2").tags["synpo.rolled_back_from"] == "champion"
    with pytest.raises(PromotionError, match="no 'previous' alias: nothing to roll 'champion' back to"):
        rollback(client, "cap", "champion")


def test_a_promotion_that_lost_a_race_changes_nothing(client):
    move_alias(client, "cap", "1", None, Decision(True, "first"), "champion")
    move_alias(client, "cap", "3", "1", Decision(True, "the other promotion"), "champion")  # wins the race
    with pytest.raises(PromotionError, match="moved to version 3 since the decision \\(taken against version 1\\)"):
        move_alias(client, "cap", "2", "1", Decision(True, "stale"), "champion")
    assert (alias_holder(client, "cap", "champion"), alias_holder(client, "cap", PREVIOUS)) == ("3", "1")
    assert "synpo.promotion" not in client.get_model_version("cap", "2").tags
