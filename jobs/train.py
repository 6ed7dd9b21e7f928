"""Preference training (SynPO or a DPO-family baseline) of a video VLM with LoRA, on Ray Train + DeepSpeed.

On a cluster:

    ray job submit --working-dir . -- python jobs/train.py --config jobs/configs/train.yaml pairs=s3://bucket/pairs/

On one machine, no GPU (2 CPU workers, the tiny toy VLM, local MLflow):

    .venv/bin/python jobs/train.py --config jobs/configs/train_local.yaml pairs=runs/demo/generated/pairs

Every config field can be overridden with ``key=value`` (``synpo config show train`` lists them all).
The run logs params, per-step metrics and the Fig.-3 curves to MLflow, checkpoints to
``run.storage_path`` (rerunning with the same ``run.name`` resumes), and registers the best epoch's
model as a new version of ``registry.model_name``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The checkout's synpo runs, not an installed copy: under `ray job submit --working-dir .` this file runs from
# the submitted folder, and RaySettings.init ships the same package to the cluster's workers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from synpo.config.loader import load_config
from synpo.console import job_console, say
from synpo.errors import UserError
from synpo.training.config import TrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML TrainConfig (see `synpo config show train`)")
    parser.add_argument(
        "--preset", default=None, help="a model preset (jobs/configs/models/*.yaml): its 'train' section is laid over --config"
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. objective=dpo optim.max_steps=10")
    parser.add_argument("--verbose", action="store_true", help="show all output (Ray's, the libraries'), not only the lines that matter")
    args = parser.parse_args(argv)
    with job_console("train", verbose=args.verbose):
        return run(args)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(TrainConfig, args.config, args.overrides, preset=args.preset, section="train")
        from synpo.training.ray_job import run_training

        result = run_training(config)
    except UserError as error:  # bad config, pairs, model or storage; anything else is a bug and keeps its traceback
        say(f"train: error: {error}", error=True)
        return 2
    if result.finished_before:
        say(
            f"run.name = {config.run.name!r} had already finished with these settings: nothing trained, nothing registered. "
            f"Its result: {result.steps} steps, {config.registry.model_name} version {result.model_version}, "
            f"MLflow run {result.mlflow_run_id}, best adapter {result.best_adapter}. Use a new run.name to train again."
        )
        return 0
    say(
        f"done: {result.steps} steps, best epoch {result.best_epoch} ({config.best_metric} = {result.best_value}); "
        f"MLflow run {result.mlflow_run_id}; registered {config.registry.model_name} version {result.model_version}; "
        f"best adapter {result.best_adapter}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
