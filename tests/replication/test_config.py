"""The replication's config: the shipped YAML and --quick load; bad settings are refused naming the field."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from synpo.cli.main import main
from synpo.config.loader import ConfigError, load_config
from synpo.replication.config import ReplicateConfig

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "jobs" / "configs" / "replicate.yaml"


def quick_overrides() -> list[str]:
    spec = importlib.util.spec_from_file_location("replicate_job", REPO / "jobs" / "replicate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.QUICK


def test_the_shipped_config_and_quick_load():
    full = load_config(ReplicateConfig, CONFIG)
    assert full.objectives == ["sft", "dpo", "simpo", "synpo", "synpo_v1"] and len(full.seeds) >= 3
    assert full.judges == ["rules", "oracle"] and full.report == "docs/replication.md"
    assert full.pairs.candidates.mode == "both" and full.pairs.engine.kind == "hf"
    quick = load_config(ReplicateConfig, CONFIG, quick_overrides())
    assert quick.seeds == [0] and quick.train.steps < full.train.steps and quick.report is None
    assert quick.objectives == full.objectives and quick.judges == full.judges  # every objective and judge still runs


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objectives=[synpo,dpo2]", r"objectives.*unknown objective\(s\) \['dpo2'\]"),
        ("objectives=[synpo,synpo]", r"objectives.*repeat"),
        ("seeds=[1,1]", r"seeds.*repeat"),
        ("judges=[oracle,gpt]", r"judges"),
        ("train.micro_batch_size=3", r"batch_size \(8\) must be a multiple of micro_batch_size \(3\)"),
        ("train.hyperparameters={dpo2: {beta: 0.1}}", r"unknown objective\(s\) \['dpo2'\]"),
        ("train.hyperparameters={synpo: {gamma: 1}}", r"objective 'synpo' has no hyperparameter\(s\) \['gamma'\]"),
        ("data.max_duration_s=2", r"max_duration_s \(2\) must be at least min_duration_s \(5\)"),
    ],
)
def test_bad_settings_are_refused_naming_them(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(ReplicateConfig, CONFIG, [override])


def test_config_show_lists_the_replication(capsys):
    assert main(["config", "show", "replicate", "--config", str(CONFIG)]) == 0
    shown = capsys.readouterr().out
    assert "oracle_min_margin" in shown and "warm_start_steps" in shown
