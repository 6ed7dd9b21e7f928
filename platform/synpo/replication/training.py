"""One preference training of the replication: an objective on a judge's pairs, with a seed.

Every run uses the platform's own trainer (:func:`synpo.training.recipe.build_trainer`, the loop a
Ray Train worker runs) in this process, on one CPU worker without DeepSpeed: the replication runs
dozens of short trainings on the same pairs, and each video is decoded once for all of them
(:func:`decode_examples`). A run writes its adapter and ``result.json`` (its per-step history: the
paper's Fig.-3 quantities, throughput) under its folder; a rerun finds ``result.json`` and skips it.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from synpo.config.sections import MlflowSettings
from synpo.replication.config import ReplicationTraining
from synpo.storage import Storage
from synpo.training.batches import InMemoryBatches
from synpo.training.collate import PairCollator, PairExample
from synpo.training.config import (
    DeepSpeedSettings,
    DiagnosticsSettings,
    OptimSettings,
    ScalingSettings,
    TrainConfig,
)
from synpo.training.recipe import build_trainer, load_policy
from synpo.training.trainer import LoopHooks
from synpo.video.sampler import VideoSamplingConfig, sample_video

logger = logging.getLogger(__name__)
RESULT_FILE = "result.json"
ADAPTER_DIR = "adapter"


@dataclass
class TrainingRun:
    """What one finished training left behind."""

    judge: str
    objective: str
    seed: int
    learning_rate: float
    adapter: str
    pairs: int
    seconds: float
    history: list[dict] = field(default_factory=list)  # one row per optimizer step
    mlflow_run_id: str | None = None

    @property
    def pairs_per_s(self) -> float:
        """Median training throughput over the steps, the first (warm-up) left out when there are others."""
        rates = [row["pairs_per_s"] for row in self.history if "pairs_per_s" in row]
        return statistics.median(rates[1:] or rates) if rates else float("nan")


def decode_examples(pairs: list[dict], video: VideoSamplingConfig, storage: Storage, progress: bool = True) -> list[PairExample]:
    """The pairs as training examples, each distinct video sampled once."""
    sampled = {uri: sample_video(storage.local_path_or_bytes(uri), uri, video) for uri in tqdm(sorted({row["video"] for row in pairs}), desc="decode pair videos", disable=not progress)}
    return [
        PairExample(
            pair_id=row["pair_id"], prompt=row["prompt"], chosen=row["chosen"], rejected=row["rejected"],
            frames=sampled[row["video"]].frames, video_metadata=sampled[row["video"]].processor_metadata(),
        )  # fmt: skip
        for row in pairs
    ]


def train_config(settings: ReplicationTraining, base_model: str, objective: str, seed: int, learning_rate: float) -> TrainConfig:
    """The same LoRA, steps, batch and schedule for every objective; only the objective and seed differ."""
    return TrainConfig(
        pairs="in-memory",
        model=base_model,
        objective=objective,
        hyperparameters=settings.hyperparameters.get(objective, {}),
        seed=seed,
        scaling=ScalingSettings(num_workers=1),
        deepspeed=DeepSpeedSettings(enabled=False),
        lora=settings.lora,
        optim=OptimSettings(
            learning_rate=learning_rate,
            warmup_ratio=0.1,
            effective_batch_size=settings.batch_size,
            micro_batch_size=settings.micro_batch_size,
            epochs=10**6,
            max_steps=settings.steps,
        ),
        diagnostics=DiagnosticsSettings(grad_norm_every_steps=0),
        video=settings.video,
        max_response_tokens=settings.max_response_tokens,
    )


def train_run(
    settings: ReplicationTraining,
    base_model: str,
    examples: list[PairExample],
    judge: str,
    objective: str,
    seed: int,
    learning_rate: float,
    folder: Path,
    mlflow_settings: MlflowSettings,
) -> tuple[TrainingRun, bool]:
    """Train ``objective`` on ``examples`` with ``seed`` (the adapter lands in ``folder``), or find it trained
    already; returns the run and whether it was trained now."""
    result_path = folder / RESULT_FILE
    if result_path.is_file():
        return TrainingRun(**json.loads(result_path.read_text())), False
    logger.info("training %s with %s at lr %g on the %s judge's %d pairs (seed %d)", folder.name, objective, learning_rate, judge, len(examples), seed)
    config = train_config(settings, base_model, objective, seed, learning_rate)
    policy = load_policy(config, base_model)
    history: list[dict] = []
    batches = InMemoryBatches(examples, PairCollator(policy.processor, settings.max_response_tokens), config)
    start = time.perf_counter()
    build_trainer(config, policy, batches, hooks=LoopHooks(log=lambda metrics, step: history.append({"step": step, **metrics}))).fit()
    seconds = time.perf_counter() - start
    policy.model.save_pretrained(folder / ADAPTER_DIR)
    run = TrainingRun(judge, objective, seed, learning_rate, str(folder / ADAPTER_DIR), len(examples), seconds, history)
    if mlflow_settings.enabled:
        run.mlflow_run_id = log_training(run, config, mlflow_settings)
    result_path.write_text(json.dumps(asdict(run), indent=1))  # last: its presence means the run is complete
    return run, True


def log_training(run: TrainingRun, config: TrainConfig, settings: MlflowSettings) -> str:
    """One MLflow run per training: the settings as params, every step's metrics, the judge/objective/seed as tags."""
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient(settings.tracking_uri)
    experiment_id = settings.experiment_id()
    tags = {"synpo.job": "replicate.train", "synpo.judge": run.judge, "synpo.objective": run.objective, "synpo.seed": str(run.seed), "synpo.learning_rate": f"{run.learning_rate:g}"}
    mlflow_run = client.create_run(experiment_id, run_name=f"train-{run.judge}-{run.objective}-lr{run.learning_rate:g}-seed{run.seed}", tags=tags)
    run_id = mlflow_run.info.run_id
    params = {
        "objective": config.objective,
        "hyperparameters": json.dumps(config.loss_objective().hyperparameters, sort_keys=True),
        "seed": config.seed,
        "steps": config.optim.max_steps,
        "batch_size": config.optim.effective_batch_size,
        "learning_rate": config.optim.learning_rate,
        "lora_rank": config.lora.rank,
        "pairs": run.pairs,
        "base_model": config.model,
    }
    timestamp = int(time.time() * 1000)
    metrics = [Metric(key, float(value), timestamp, row["step"]) for row in run.history for key, value in row.items() if key != "step"]
    client.log_batch(run_id, params=[mlflow.entities.Param(key, str(value)) for key, value in params.items()])
    for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    client.log_metric(run_id, "pairs_per_s_median", run.pairs_per_s)
    client.set_terminated(run_id, "FINISHED")
    return run_id
