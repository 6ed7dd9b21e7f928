"""Helpers shared by the pair-generation tests."""

from __future__ import annotations

from pathlib import Path

from synpo.config.loader import load_config
from synpo.pairgen.config import PairsConfig

REPO = Path(__file__).resolve().parents[2]


def small_config(model: Path, input_uri: str, output_uri: str, *overrides: str) -> PairsConfig:
    """``jobs/configs/pairs_local.yaml`` shrunk for tests: 3 candidates, short captions, no MLflow."""
    return load_config(
        PairsConfig,
        REPO / "jobs/configs/pairs_local.yaml",
        [
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
        ],
    )
