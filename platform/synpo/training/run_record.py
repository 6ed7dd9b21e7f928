"""What a training run was started with, so that a rerun under the same ``run.name`` only ever continues it.

``<run.storage_path>/<run.name>/run_settings.json`` holds the settings that decide the trained weights
(:data:`SHAPING`: the pairs, and a digest of their content, the model, objective, LoRA, optimizer, video,
seed, workers, ZeRO stage) and the run's length (``optim.epochs``, ``optim.max_steps``). A rerun:

- with other shaping settings is refused before Ray starts (its checkpoints would be continued with other
  data or another objective, and the model registered under the new settings' tags would be the old one);
- with a longer length continues training from the last checkpoint;
- with the same settings and length after ``job_result.json`` was written is *finished*: nothing is trained
  and nothing registered again; the earlier result is returned.

Where and how fast a run works (storage, Ray, MLflow, the registry, loader processes, logging cadence,
fault tolerance, DeepSpeed's buckets) may change between attempts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from synpo.config.base import differences
from synpo.config.loader import ConfigError
from synpo.storage import Storage, join_uri
from synpo.training.config import TrainConfig

SETTINGS_FILE = "run_settings.json"
RESULT_FILE = "job_result.json"
LENGTH = {"optim": ("epochs", "max_steps")}
SHAPING: dict[str, tuple[str, ...] | None] = {  # top-level field -> its shaping sub-fields (None = all of it)
    "pairs": None, "val_pairs": None, "val_fraction": None, "model": None, "objective": None, "hyperparameters": None,
    "reference": None, "lora": None, "video": None, "max_response_tokens": None, "encode_video_once": None,
    "best_metric": None, "seed": None,
    "optim": ("learning_rate", "weight_decay", "warmup_ratio", "effective_batch_size", "micro_batch_size", "max_grad_norm"),
    "diagnostics": ("eval_every_steps",),
    "scaling": ("num_workers", "use_gpu"),
    "deepspeed": ("enabled", "zero_stage"),
}  # fmt: skip


def _pick(dumped: dict[str, Any], fields: dict[str, tuple[str, ...] | None]) -> dict[str, Any]:
    return {key: dumped[key] if sub is None else {name: dumped[key][name] for name in sub} for key, sub in fields.items()}


def pairs_digest(rows: list[dict[str, Any]]) -> str:
    """A digest of the pairs' content (ids, videos, prompts, both captions), order-independent."""
    lines = sorted(json.dumps([row["pair_id"], row["video"], row["prompt"], row["chosen"], row["rejected"]]) for row in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def record_of(config: TrainConfig, digest: str) -> dict[str, Any]:
    dumped = config.model_dump(mode="json")
    return {"settings": {**_pick(dumped, SHAPING), "pairs_digest": digest}, "length": _pick(dumped, LENGTH)}


def run_folder(config: TrainConfig) -> str:
    return join_uri(config.run.storage_path, config.run.name)


def check_and_record(config: TrainConfig, digest: str, storage: Storage) -> dict[str, Any] | None:
    """Refuse a rerun whose shaping settings changed; return the earlier job result if this exact run finished,
    else record the settings (a new run, or a continued one) and return None."""
    current = record_of(config, digest)
    settings_uri = join_uri(run_folder(config), SETTINGS_FILE)
    if storage.exists(settings_uri):
        recorded = json.loads(storage.read_text(settings_uri))
        changes = differences(recorded["settings"], current["settings"])
        if changes:
            raise ConfigError(
                f"run.name = {config.run.name!r} was trained with other settings at {run_folder(config)}; continuing it would "
                f"mix them. Changed: {'; '.join(changes[:8])}. Use a new run.name (or the original settings to continue it)."
            )
        result_uri = join_uri(run_folder(config), RESULT_FILE)
        if recorded["length"] == current["length"] and storage.exists(result_uri):
            return json.loads(storage.read_text(result_uri))
    storage.write_text(settings_uri, json.dumps(current, indent=1))
    return None
