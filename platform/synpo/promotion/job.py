"""The promotion driver.

    promote(config)            evaluate candidate and holder on one eval set (each once: runs are reused),
                               decide (synpo.registry.promotion.decide), move the alias unless dry_run
    rollback(config)           the alias back to its previous holder

The alias is read before the evaluations and checked again when it moves: if another promotion moved
it in between, this one changes nothing and says so. A Serve deployment that serves the alias picks
up the new version: ``serve.urls`` are told to reload at once (``POST /v1/admin/reload``), and every
deployment also polls the alias.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from synpo.evaluation.job import EvalResult, run_eval
from synpo.promotion.config import PromoteConfig
from synpo.promotion.serve_reload import reload_deployments
from synpo.registry.promotion import Decision, alias_holder, decide, move_alias
from synpo.registry.promotion import rollback as rollback_alias
from synpo.storage import Storage, join_uri

DECISION_FILE = "promotion.json"  # the latest decision, beside the evaluations in eval.output
SHOWN = ("CIDEr", "BLEU-4", "facts/precision", "facts/recall", "facts/hallucination_rate", "llm/detail", "llm/qa_accuracy")


@dataclass
class PromotionResult:
    name: str
    candidate: str
    holder: str | None
    decision: Decision
    moved: bool
    evaluations: dict[str, EvalResult] = field(default_factory=dict)  # version -> its evaluation
    reloads: list[str] = field(default_factory=list)  # what each Serve deployment said when told to reload

    def lines(self) -> list[str]:
        verdict = "PROMOTE" if self.decision.promote else "KEEP"
        against = f"v{self.holder}" if self.holder else ("the baseline" if "baseline" in self.evaluations else "no holder")
        what = f"{self.name} v{self.candidate} vs {against}"
        scores = [f"  {'v' + key if key.isdigit() else key:<10} " + " ".join(f"{metric}={result.metrics[metric]:.4f}" for metric in SHOWN if metric in result.metrics) for key, result in self.evaluations.items()]
        moved = "alias moved" if self.moved else ("dry run: alias not moved" if self.decision.promote else "alias not moved")
        change = [self.change_line()] if self.change_line() else []
        return [*scores, *change, f"{verdict} {what}: {self.decision.reason} ({moved})", *(f"  {check}" for check in self.decision.checks), *self.reloads]

    def change_line(self) -> str | None:
        """One line: what the candidate does differently from what it was compared with, metric by metric."""
        others = [key for key in self.evaluations if key != self.candidate]
        if self.candidate not in self.evaluations or not others:
            return None
        new, old = self.evaluations[self.candidate], self.evaluations[others[0]]
        against = f"v{others[0]}" if others[0].isdigit() else others[0]
        changes = [
            f"{metric} {old.metrics[metric]:.3f} -> {new.metrics[metric]:.3f} ({new.metrics[metric] - old.metrics[metric]:+.3f})"
            for metric in SHOWN
            if metric in new.metrics and metric in old.metrics
        ]
        return f"v{self.candidate} against {against} on {new.videos} videos: " + ", ".join(changes)

    def to_dict(self) -> dict:
        """What ``promotion.json`` beside the evaluations records."""
        return {
            "name": self.name, "candidate": self.candidate, "holder": self.holder, "promote": self.decision.promote,
            "reason": self.decision.reason, "checks": self.decision.checks, "moved": self.moved, "change": self.change_line(),
            "evaluations": {key: {"run_id": result.run_id, "metrics": result.metrics} for key, result in self.evaluations.items()},
        }  # fmt: skip


def _client(config: PromoteConfig):
    from mlflow import MlflowClient

    uri = config.eval.mlflow.tracking_uri
    return MlflowClient(uri, registry_uri=uri)


def _run_eval(config: PromoteConfig, model: str, folder: str) -> EvalResult:
    """``model`` evaluated as ``config.eval`` says, into ``<eval.output>/<folder>``; every evaluation of a promotion shares
    one LLM judge cache (``<eval.output>/llm-judge-cache`` unless set), so both sides are asked the same QA questions."""
    llm = config.eval.metrics.llm
    metrics = config.eval.metrics.model_copy(update={"llm": llm.model_copy(update={"cache": llm.cache or join_uri(config.eval.output, "llm-judge-cache")})})
    return run_eval(config.eval.model_copy(update={"model": model, "output": join_uri(config.eval.output, folder), "metrics": metrics}), progress=False)


def _evaluate(config: PromoteConfig, name: str, version: str) -> EvalResult:
    return _run_eval(config, f"models:/{name}/{version}", f"{name}-v{version}")


def promote(config: PromoteConfig, dry_run: bool = False) -> PromotionResult:
    """Evaluate, decide and (unless ``dry_run``) move ``policy.alias``; the result says what and why."""
    name, version = config.require_candidate()
    client = _client(config)
    holder = alias_holder(client, name, config.policy.alias)
    if holder == version:
        return PromotionResult(name, version, holder, Decision(False, f"version {version} already holds {config.policy.alias!r}"), False)
    evaluations = {version: _evaluate(config, name, version)}
    if holder is not None:
        evaluations[holder] = _evaluate(config, name, holder)
        decision = decide(evaluations[version].metrics, evaluations[holder].metrics, config.policy)
    elif config.baseline:
        evaluations["baseline"] = _run_eval(config, config.baseline, "baseline")
        compared = decide(evaluations[version].metrics, evaluations["baseline"].metrics, config.policy)
        floors = decide(evaluations[version].metrics, None, config.policy)
        promote_it = compared.promote and floors.promote
        reason = f"first version, against the baseline {config.baseline}: {compared.reason}" + ("" if floors.promote else f"; {floors.reason}")
        decision = Decision(promote_it, reason, compared.checks + floors.checks)
    else:
        decision = decide(evaluations[version].metrics, None, config.policy)
    moved = False
    if decision.promote and not dry_run:
        move_alias(client, name, version, holder, decision, config.policy.alias)
        client.set_model_version_tag(name, version, "synpo.promotion_eval_runs", ",".join(result.run_id for result in evaluations.values()))
        moved = True
    result = PromotionResult(name, version, holder, decision, moved, evaluations, reload_deployments(config.serve) if moved else [])
    Storage(config.eval.storage).write_text(join_uri(config.eval.output, DECISION_FILE), json.dumps(result.to_dict(), indent=1))
    return result


def rollback(config: PromoteConfig) -> tuple[str, list[str]]:
    """Point the alias back at its previous holder and tell the Serve deployments; returns that version and their answers."""
    version = rollback_alias(_client(config), config.model_name, config.policy.alias)
    return version, reload_deployments(config.serve)
