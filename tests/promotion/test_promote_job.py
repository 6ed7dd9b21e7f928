"""The promotion job on a real local Ray and MLflow registry: the warm tiny VLM's zero adapter (v1, the
base model) and a SynPO-trained adapter (v2); the first version promoted, then v2 decided both ways,
rollback, and bad candidates that leave the registry untouched."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from registry_support import register_versions
from synpo.config.loader import ConfigError, load_config
from synpo.errors import ModelNotFound
from synpo.promotion.config import PromoteConfig
from synpo.promotion.job import promote, rollback
from synpo.registry.promotion import PREVIOUS, alias_holder
from synpo.storage import Storage
from synpo.training.batches import InMemoryBatches
from synpo.training.collate import PairCollator
from synpo.training.config import (
    DeepSpeedSettings,
    DiagnosticsSettings,
    LoraSettings,
    OptimSettings,
    ScalingSettings,
    TrainConfig,
)
from synpo.training.data import PairDataset
from synpo.training.recipe import build_trainer, load_policy
from synpo.video.sampler import VideoSamplingConfig

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
VIDEO = VideoSamplingConfig(num_frames=8, max_side=160)


def adapter(model_dir: Path, out: Path, pairs: list[dict], steps: int) -> Path:
    """A LoRA adapter after ``steps`` SynPO steps on ``pairs`` (0 steps: B = 0, the base model itself)."""
    config = TrainConfig(
        pairs="in-memory", model=str(model_dir), objective="synpo", scaling=ScalingSettings(num_workers=1), deepspeed=DeepSpeedSettings(enabled=False),
        lora=LoraSettings(rank=8, alpha=16, dropout=0.0), diagnostics=DiagnosticsSettings(grad_norm_every_steps=0), video=VIDEO,
        optim=OptimSettings(learning_rate=5e-3, warmup_ratio=0.0, effective_batch_size=4, micro_batch_size=4, max_steps=max(steps, 1)),
    )  # fmt: skip
    policy = load_policy(config, model_dir)
    if steps:
        dataset = PairDataset(pairs, VIDEO, Storage())
        build_trainer(config, policy, InMemoryBatches([dataset[i] for i in range(len(dataset))], PairCollator(policy.processor, 160), config)).fit()
    policy.model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def registry(warm_vlm, toy_pair_rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("promote")
    tracking = f"sqlite:///{folder}/mlflow.db"
    adapters = [adapter(warm_vlm, folder / f"adapter-{version}", toy_pair_rows, steps) for version, steps in ((1, 0), (2, 12))]
    register_versions(tracking, folder / "train-artifacts", "cap", [
        {"adapter_dir": str(trained), "base_model_dir": str(warm_vlm), "video": VIDEO.model_dump(), "prompt": "Describe.", "max_new_tokens": 48}
        for trained in adapters
    ])  # fmt: skip
    return folder, tracking


def promote_config(registry, toy_video_dir, *overrides: str) -> PromoteConfig:
    folder, tracking = registry
    return load_config(
        PromoteConfig, REPO / "jobs/configs/promote_local.yaml",
        [f"eval.eval_set={toy_video_dir / 'manifest.jsonl'}", f"eval.output={folder / 'eval'}", f"eval.mlflow.tracking_uri={tracking}",
         f"eval.mlflow.artifact_location={folder / 'eval-artifacts'}", "eval.max_new_tokens=48", "model_name=cap", *overrides],
    )  # fmt: skip


def test_first_version_then_the_decision_both_ways_then_rollback(ray_cluster, registry, toy_video_dir):
    client = mlflow.MlflowClient(registry[1])
    first = promote(promote_config(registry, toy_video_dir, "candidate=models:/cap/1"))
    assert first.moved and first.holder is None and alias_holder(client, "cap", "champion") == "1"

    dry = promote(promote_config(registry, toy_video_dir, "candidate=models:/cap/2", "policy.primary=CIDEr", "policy.guards={}"), dry_run=True)
    assert not dry.moved and alias_holder(client, "cap", "champion") == "1"
    gain = dry.evaluations["2"].metrics["CIDEr"] - dry.evaluations["1"].metrics["CIDEr"]
    assert gain != 0, "the trained adapter captions exactly like the base: nothing to decide on"
    direction = [] if gain > 0 else ["policy.lower_is_better=[CIDEr]"]  # make v2 the better one on the primary metric
    refused = promote(promote_config(registry, toy_video_dir, "candidate=models:/cap/2", "policy.primary=CIDEr", "policy.guards={}",
                                     f"policy.min_improvement={2 * abs(gain)}", *direction))  # fmt: skip
    assert not refused.moved and "does not improve enough" in refused.decision.reason and alias_holder(client, "cap", "champion") == "1"
    promoted = promote(promote_config(registry, toy_video_dir, "candidate=models:/cap/2", "policy.primary=CIDEr", "policy.guards={}",
                                      f"policy.min_improvement={abs(gain) / 2}", *direction))  # fmt: skip
    assert promoted.moved and (alias_holder(client, "cap", "champion"), alias_holder(client, "cap", PREVIOUS)) == ("2", "1")
    tags = client.get_model_version("cap", "2").tags
    assert tags["synpo.promoted_over"] == "1" and promoted.evaluations["2"].run_id in tags["synpo.promotion_eval_runs"]
    assert promoted.evaluations["2"].reused and promoted.evaluations["1"].reused  # each version was evaluated once

    assert rollback(promote_config(registry, toy_video_dir)) == ("1", [])
    assert (alias_holder(client, "cap", "champion"), alias_holder(client, "cap", PREVIOUS)) == ("1", None)


def test_bad_candidates_are_clear_errors_and_leave_the_registry_untouched(ray_cluster, registry, toy_video_dir):
    client = mlflow.MlflowClient(registry[1])
    before = client.get_registered_model("cap").aliases
    with pytest.raises(ModelNotFound, match="has no version 9"):
        promote(promote_config(registry, toy_video_dir, "candidate=models:/cap/9"))
    with pytest.raises(ConfigError, match="a version number, not an alias"):
        promote(promote_config(registry, toy_video_dir, "candidate=models:/cap@champion"))
    with pytest.raises(ConfigError, match="eval.eval_set, eval.output: required"):
        promote(load_config(PromoteConfig, None, ["candidate=models:/cap/2"]))
    assert client.get_registered_model("cap").aliases == before


def test_a_first_version_can_be_gated_against_the_base_model(ray_cluster, registry, toy_video_dir, warm_vlm):
    """No holder of 'staging' yet: v2 is compared with the base model folder. v1's adapter is zero, so v1 and the
    base caption identically: their evaluations (one by version, one by folder) agree on every metric."""
    client = mlflow.MlflowClient(registry[1])
    result = promote(
        promote_config(registry, toy_video_dir, "candidate=models:/cap/2", "policy.alias=staging", f"baseline={warm_vlm}"), dry_run=True
    )
    assert result.holder is None and set(result.evaluations) == {"2", "baseline"} and not result.moved
    assert "against the baseline" in result.decision.reason and any("vs" in check for check in result.decision.checks)
    assert alias_holder(client, "cap", "staging") is None
    v1 = promote(promote_config(registry, toy_video_dir, "candidate=models:/cap/1", "policy.alias=staging", f"baseline={warm_vlm}"), dry_run=True)
    assert v1.evaluations["1"].metrics == pytest.approx(v1.evaluations["baseline"].metrics)
    assert not v1.decision.promote  # identical to the baseline: no improvement
    assert any(line.startswith("  baseline") for line in result.lines())
    new, old = result.evaluations["2"].metrics, result.evaluations["baseline"].metrics
    change = result.change_line()
    assert change.startswith(f"v2 against baseline on {result.evaluations['2'].videos} videos: CIDEr {old['CIDEr']:.3f} -> {new['CIDEr']:.3f}")
    assert f"({new['facts/precision'] - old['facts/precision']:+.3f})" in change and change in result.lines()
    recorded = json.loads((registry[0] / "eval" / "promotion.json").read_text())  # the latest decision (v1's), beside the evaluations
    assert recorded["candidate"] == "1" and recorded["change"] == v1.change_line() and recorded["promote"] is False
    assert recorded["evaluations"]["baseline"]["run_id"] == v1.evaluations["baseline"].run_id
