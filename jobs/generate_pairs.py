"""Build preference pairs from videos: sample candidate captions, judge them, keep chosen/rejected pairs.

On a GPU cluster (vLLM engine actors, a hosted judge):

    ray job submit --working-dir . -- python jobs/generate_pairs.py --config jobs/configs/pairs.yaml \\
        input=s3://bucket/videos/manifest.jsonl output=s3://bucket/synpo/pairs/run-1

On one machine, no GPU, no network (HF engine, the tiny toy VLM built if missing, the offline judge):

    .venv/bin/python jobs/generate_pairs.py --config jobs/configs/pairs_local.yaml input=runs/demo/videos output=runs/demo/generated

Rerunning with the same output resumes: finished videos are skipped. Pairs land in
``<output>/pairs/`` (the training job reads that folder), with ``audit/``, ``videos/``,
``failures/`` and ``summary.json`` beside them; ``synpo pairs report`` renders them as HTML.
Every field can be overridden with ``key=value`` (``synpo config show pairs`` lists them all).
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
from synpo.pairgen.config import PairsConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML PairsConfig (see `synpo config show pairs`)")
    parser.add_argument(
        "--preset", default=None, help="a model preset (jobs/configs/models/*.yaml): its 'pairs' section is laid over --config"
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. input=DIR output=DIR candidates.sampling.n=6")
    parser.add_argument("--verbose", action="store_true", help="show all output (Ray's, the libraries'), not only the lines that matter")
    args = parser.parse_args(argv)
    with job_console("generate_pairs", verbose=args.verbose):
        return run(args)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        config = load_config(PairsConfig, args.config, args.overrides, preset=args.preset, section="pairs")
        config.require_paths()
        from synpo.pairgen.pipeline import run_pairs

        summary = run_pairs(config)
    except UserError as error:  # bad config, input, output or judge; anything else is a bug and keeps its traceback
        say(f"generate_pairs: error: {error}", error=True)
        return 2
    say("\n".join(summary.lines()))
    say(summary.where_pairs_are())
    return 0


if __name__ == "__main__":
    sys.exit(main())
