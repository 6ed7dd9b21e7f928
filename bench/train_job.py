"""The full training job (Ray Train + DeepSpeed ZeRO-2 + MLflow) measured end to end.

    .venv/bin/python bench/train_job.py

Runs the job on toy-world pairs with the warm-started tiny VLM, on a local Ray cluster:
SynPO and DPO with 2 workers (same data, same steps), and SynPO with 1 worker (same effective batch
via gradient accumulation). Throughput = median over optimizer steps (the first of each run skipped)
of the pairs all workers process per second, read back from the MLflow run. Prints the ratios.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import mlflow

from synpo.config.loader import load_config
from synpo.pairs import write_pairs
from synpo.toy.model import build_tiny_model
from synpo.toy.pairs import toy_pairs
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.training.config import TrainConfig
from synpo.training.ray_job import run_training

REPO = Path(__file__).resolve().parents[1]


def throughput(tracking_uri: str, run_id: str) -> float:
    history = mlflow.MlflowClient(tracking_uri).get_metric_history(run_id, "pairs_per_s_all_workers")
    values = [metric.value for metric in sorted(history, key=lambda metric: metric.step)][1:]
    return statistics.median(values)


def main() -> None:
    import ray

    with tempfile.TemporaryDirectory(prefix="synpo-bench-job-") as work_dir:
        work = Path(work_dir)
        write_toy_videos(str(work / "videos"), count=40, seed=8, spec=ToyVideoSpec(max_duration_s=20), progress=False)
        write_pairs(toy_pairs(str(work / "videos")), str(work / "pairs.parquet"))
        model = build_tiny_model(work / "model", kind="vlm", warm_start_steps=150)
        tracking = f"sqlite:///{work / 'mlflow.db'}"
        common = [
            f"pairs={work / 'pairs.parquet'}", f"model={model}", f"run.storage_path={work / 'ray'}",
            f"mlflow.tracking_uri={tracking}", "registry.model_name=null", "val_fraction=0.2",
            "optim.epochs=2", "diagnostics.grad_norm_every_steps=0",
        ]
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
        variants = {
            "synpo, 2 workers": ["objective=synpo", "scaling.num_workers=2"],
            "dpo, 2 workers": ["objective=dpo", "scaling.num_workers=2"],
            "synpo, 1 worker": ["objective=synpo", "scaling.num_workers=1"],
        }
        rates = {}
        for index, (name, overrides) in enumerate(variants.items()):
            config = load_config(TrainConfig, REPO / "jobs/configs/train_local.yaml", [*common, *overrides, f"run.name=bench{index}"])
            result = run_training(config)
            rates[name] = throughput(tracking, result.mlflow_run_id)
        ray.shutdown()
    print("\nfull job: tiny VLM, 8 frames, 4 pairs per optimizer step, ZeRO-2, CPU workers on a 2-core machine")
    for name, rate in rates.items():
        print(f"  {name:18s} {rate:6.2f} pairs/s")
    print(f"  SynPO / DPO (2 workers): {rates['synpo, 2 workers'] / rates['dpo, 2 workers']:.2f}x")
    print(f"  2 workers / 1 worker (SynPO): {rates['synpo, 2 workers'] / rates['synpo, 1 worker']:.2f}x")


if __name__ == "__main__":
    main()
