"""The tuned captioner as an MLflow pyfunc model: base VLM (bundled or by path) + LoRA adapter.

``mlflow.pyfunc.load_model("models:/NAME/VERSION").predict(df)`` takes a DataFrame with a ``video``
column (local path, ``file://`` or ``s3://`` URI) and an optional ``prompt`` column, and returns one
greedy caption per row. Loading needs no hub: the base model is either copied into the model's
artifacts (``include_base_model``) or read from the recorded local path.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema


class CaptionerModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from synpo.sampling.hf_engine import HFEngine
        from synpo.sampling.request import SamplingParams
        from synpo.storage import Storage
        from synpo.video.sampler import VideoSamplingConfig

        settings = context.model_config
        base = context.artifacts.get("base_model") or settings["base_model_path"]
        self.engine = HFEngine(base, device=settings.get("device", "auto"), adapter=context.artifacts["adapter"])
        self.video = VideoSamplingConfig.model_validate(settings["video"])
        self.sampling = SamplingParams(n=1, temperature=0.0, max_new_tokens=settings["max_new_tokens"])
        self.default_prompt = settings["prompt"]
        self.storage = Storage()

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[str]:
        from synpo.video.sampler import sample_video

        captions = []
        for row in model_input.to_dict(orient="records"):
            uri = row["video"]
            frames = sample_video(self.storage.local_path_or_bytes(uri), uri, self.video).frames
            prompt = row.get("prompt") or self.default_prompt
            captions.append(self.engine.caption(frames, prompt, self.sampling)[0].text)
        return captions


def git_commit(folder: str | Path = ".") -> str:
    """The checkout's commit, or ``"unknown"`` outside a git checkout (e.g. a Ray job's working dir)."""
    try:
        completed = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True, timeout=10)
    except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired):
        return "unknown"
    return completed.stdout.strip()


def log_captioner(
    adapter_dir: str,
    base_model_dir: str,
    include_base: bool,
    video: dict,
    prompt: str,
    max_new_tokens: int,
    registered_model: str | None,
    tags: dict[str, str],
):
    """Log the captioner in the active run (``model`` artifact) and register it; returns the ModelVersion or None."""
    artifacts = {"adapter": adapter_dir}
    if include_base:
        artifacts["base_model"] = base_model_dir
    model_config = {
        "base_model_path": str(Path(base_model_dir).resolve()),
        "video": video,
        "prompt": prompt,
        "max_new_tokens": max_new_tokens,
    }
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=CaptionerModel(),
        artifacts=artifacts,
        model_config=model_config,
        signature=ModelSignature(
            inputs=Schema([ColSpec("string", "video"), ColSpec("string", "prompt", required=False)]),
            outputs=Schema([ColSpec("string")]),
        ),
        pip_requirements=["synpo"],
    )
    if registered_model is None:
        return None
    version = mlflow.register_model(info.model_uri, registered_model, tags=tags)
    return version
