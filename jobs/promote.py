"""Promote a registered captioner version to the serving alias if its evaluation beats the holder's.

    ray job submit --working-dir . -- python jobs/promote.py --config jobs/configs/promote.yaml candidate=models:/synpo-captioner/7 [--dry-run]
    .venv/bin/python jobs/promote.py --config jobs/configs/promote_local.yaml rollback

Both versions are evaluated on ``eval.eval_set`` (each at most once: earlier runs are reused); the
alias moves only if ``policy.primary`` improves by ``policy.min_improvement`` and no guard regresses
beyond its tolerance (a first version must clear ``policy.floors``). ``--dry-run`` prints the decision
and moves nothing; ``rollback`` gives the alias back to its previous holder.
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
from synpo.promotion.config import PromoteConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML PromoteConfig (see `synpo config show promote`)")
    parser.add_argument("--dry-run", action="store_true", help="evaluate and decide, but do not move the alias")
    parser.add_argument("words", nargs="*", help="'rollback', and/or key=value overrides, e.g. candidate=models:/NAME/7")
    parser.add_argument("--verbose", action="store_true", help="show all output (Ray's, the libraries'), not only the lines that matter")
    args = parser.parse_args(argv)
    with job_console("promote", verbose=args.verbose):
        return run(args)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    do_rollback = "rollback" in args.words
    overrides = [word for word in args.words if word != "rollback"]
    try:
        config = load_config(PromoteConfig, args.config, overrides)
        from synpo.promotion.job import promote, rollback

        if do_rollback:
            version, reloads = rollback(config)
            say("\n".join([f"{config.model_name}@{config.policy.alias} is version {version} again", *reloads]))
            return 0
        result = promote(config, dry_run=args.dry_run)
    except UserError as error:  # bad config, model, eval set, or an alias that moved under us
        say(f"promote: error: {error}", error=True)
        return 2
    say("\n".join(result.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
