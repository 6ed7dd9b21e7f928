"""Helpers shared by the pair-generation tests."""

from __future__ import annotations

from pathlib import Path

from synpo.config.loader import load_config
from synpo.pairgen.config import PairsConfig

REPO = Path(__file__).resolve().parents[2]
LOCAL_YAML = REPO / "jobs/configs/pairs_local.yaml"


def small_overrides(model: Path, input_uri: str, output_uri: str, *overrides: str) -> list[str]:
    """Overrides of ``jobs/configs/pairs_local.yaml`` for tests: 3 candidates, short captions, no MLflow."""
    return [
        f"engine.model={model}",
        f"input={input_uri}",
        f"output={output_uri}",
        "candidates.sampling.n=3",
        "candidates.sampling.max_new_tokens=24",
        "clips.max_new_tokens=12",
        "judge.min_margin=0",
        "mlflow.enabled=false",
        "judge_cache_flush_s=0.5",
        *overrides,
    ]


def small_config(model: Path, input_uri: str, output_uri: str, *overrides: str) -> PairsConfig:
    return load_config(PairsConfig, LOCAL_YAML, small_overrides(model, input_uri, output_uri, *overrides))
