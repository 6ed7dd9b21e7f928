"""Registering captioner versions in a throw-away MLflow registry (shared by the registry, evaluation and promotion tests)."""

from __future__ import annotations

from pathlib import Path

import mlflow

from synpo.registry.captioner_model import log_captioner


def register_versions(tracking: str, artifact_root: Path, name: str, versions: list[dict]) -> None:
    """Log and register one version of ``name`` per entry (``log_captioner`` keywords: adapter_dir, base_model_dir,
    include_base, video, prompt, max_new_tokens), each from its own run; the global tracking URI is restored after."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking)
    try:
        experiment = mlflow.create_experiment(f"register-{name}-{artifact_root.name}", artifact_location=str(artifact_root))
        for version in versions:
            with mlflow.start_run(experiment_id=experiment):
                log_captioner(registered_model=name, tags={}, **{"include_base": False, "video": {}, "max_new_tokens": 16, **version})
    finally:
        mlflow.set_tracking_uri(previous)
