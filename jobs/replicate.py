"""Known-answer replication: SynPO vs DPO, SimPO and SFT (and SynPO v1) in the toy world, on one CPU machine.

    make replicate
    .venv/bin/python jobs/replicate.py --config jobs/configs/replicate.yaml [key=value ...]
    .venv/bin/python jobs/replicate.py --config jobs/configs/replicate.yaml --quick     (the plumbing only: minutes)

Toy videos -> a partly competent base model -> the pair job (CD + retrospection, rules judge) -> the same
candidates judged again by an oracle that knows every fact -> every objective trained on each judge's pairs
for every seed (same LoRA, steps, batch) -> the evaluation job on held-out toy videos -> the report
(``report``, default docs/replication.md; figures beside it). Rerunning resumes: finished parts are reused.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

# The checkout's synpo runs, not an installed copy (as in the other jobs).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from synpo.config.loader import load_config
from synpo.errors import UserError
from synpo.replication.config import ReplicateConfig

REPO = Path(__file__).resolve().parents[1]
# --quick: the whole path with everything small, to check the plumbing (the numbers mean nothing).
QUICK = [
    "output=runs/replicate-quick",
    "report=null",
    "data.train_videos=6",
    "data.heldout_videos=3",
    "data.max_duration_s=8",
    "base.warm_start_steps=20",
    "seeds=[0]",
    "oracle_min_margin=0",
    "train.steps=2",
    "train.learning_rates=[1e-3]",
    "train.batch_size=2",
    "train.micro_batch_size=2",
    "train.max_response_tokens=48",
    "pairs.candidates.sampling.n=3",
    "pairs.candidates.sampling.max_new_tokens=24",
    "pairs.clips.max_new_tokens=16",
    "pairs.judge.min_margin=0",
    "eval.max_new_tokens=32",
]


def commit() -> str:
    """The checkout's commit, marked when files other than the report differ from it."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", ".", ":!docs/replication*"], capture_output=True, text=True)
    return head.stdout.strip() + (" + uncommitted changes" if status.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML ReplicateConfig (see `synpo config show replicate`)")
    parser.add_argument("--quick", action="store_true", help="few videos, few steps, one seed: checks the plumbing in minutes")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seeds=[0,1] train.steps=30")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    command = " ".join(["python jobs/replicate.py", *(argv if argv is not None else sys.argv[1:])])
    try:
        config = load_config(ReplicateConfig, args.config, [*(QUICK if args.quick else []), *args.overrides])
        from synpo.replication.report import write_report
        from synpo.replication.run import replicate

        replication = replicate(config)
    except UserError as error:  # bad config or inputs; anything else is a bug and keeps its traceback
        print(f"replicate: error: {error}", file=sys.stderr)
        return 2
    out = Path(config.report) if config.report else Path(replication.config.output) / "replication.md"
    write_report(replication, out, command, commit())
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
