"""Evaluate a captioner on an eval set: greedy captions, reference metrics (CIDEr, METEOR, BLEU-4,
ROUGE-L), toy-world fact accuracy where the references allow, one MLflow run linked to the model version.

On a cluster:

    ray job submit --working-dir . -- python jobs/evaluate.py --config jobs/configs/eval.yaml \\
        model=models:/synpo-captioner@champion eval_set=s3://bucket/eval/manifest.jsonl output=s3://bucket/eval/run-1

On one machine, no GPU, no network (HF engine on CPU, local Ray, local MLflow):

    .venv/bin/python jobs/evaluate.py --config jobs/configs/eval_local.yaml model=toy://tiny-vlm \\
        eval_set=runs/demo/heldout/manifest.jsonl output=runs/demo/eval/base

The same model version on the same eval set with the same settings is evaluated once: a rerun
prints the recorded run. An interrupted run resumes from the captions it wrote.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# The checkout's synpo runs, not an installed copy: under `ray job submit --working-dir .` this file runs from
# the submitted folder, and RaySettings.init ships the same package to the cluster's workers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from synpo.config.loader import load_config
from synpo.console import job_console, say
from synpo.errors import UserError
from synpo.evaluation.config import EvalConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML EvalConfig (see `synpo config show eval`)")
    parser.add_argument(
        "--preset", default=None, help="a model preset (jobs/configs/models/*.yaml): its 'eval' section is laid over --config"
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. model=models:/NAME/3 eval_set=... output=...")
    parser.add_argument("--verbose", action="store_true", help="show all output (Ray's, the libraries'), not only the lines that matter")
    args = parser.parse_args(argv)
    with job_console("evaluate", verbose=args.verbose):
        return run(args)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        config = load_config(EvalConfig, args.config, args.overrides, preset=args.preset, section="eval")
        config.require_paths()
        from synpo.evaluation.job import HEADLINE, run_eval

        result = run_eval(config)
    except UserError as error:  # bad config, model, eval set or output; anything else is a bug and keeps its traceback
        say(f"evaluate: error: {error}", error=True)
        return 2
    state = "recorded earlier" if result.reused else "new"
    lines = [f"{result.model} on eval set {result.eval_set} ({result.videos} videos): MLflow run {result.run_id} ({state})"]
    lines += [f"  {metric:<26} {result.metrics[metric]:.4f}" for metric in HEADLINE if metric in result.metrics]
    say("\n".join(lines))  # one say: each waits for the console's pipe to drain
    return 0


if __name__ == "__main__":
    sys.exit(main())
