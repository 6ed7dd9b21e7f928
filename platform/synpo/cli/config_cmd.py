"""``synpo config show JOB``: the resolved config of a job, every field with its default and help."""

from __future__ import annotations

import argparse

from synpo.cli.caption import CaptionConfig
from synpo.config.base import StrictModel
from synpo.config.loader import load_config
from synpo.config.render import render_config
from synpo.evaluation.config import EvalConfig
from synpo.judging.config import JudgeConfig
from synpo.pairgen.config import PairsConfig
from synpo.promotion.config import PromoteConfig
from synpo.replication.config import ReplicateConfig
from synpo.serving.settings import ServeSettings
from synpo.training.config import TrainConfig

JOB_CONFIGS: dict[str, type[StrictModel]] = {
    "caption": CaptionConfig,
    "eval": EvalConfig,
    "judge": JudgeConfig,
    "pairs": PairsConfig,
    "promote": PromoteConfig,
    "replicate": ReplicateConfig,
    "serve": ServeSettings,
    "train": TrainConfig,
}


def _show(args: argparse.Namespace) -> int:
    section = args.job if args.preset else None
    config = load_config(JOB_CONFIGS[args.job], args.config, args.overrides, preset=args.preset, section=section)
    print(f"# resolved config of job {args.job!r}")
    print(render_config(config))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser("config", help="inspect job configs")
    sub = config.add_subparsers(dest="config_command", required=True, metavar="WHAT")
    show = sub.add_parser("show", help="print a job's resolved config with defaults and help text")
    show.add_argument("job", choices=sorted(JOB_CONFIGS), help="job name")
    show.add_argument("--config", default=None, help="YAML config file to resolve")
    show.add_argument("--preset", default=None, help="model preset (jobs/configs/models/*.yaml) laid over --config: its JOB section")
    show.add_argument("overrides", nargs="*", help="key=value overrides (dotted keys, e.g. generation.n=4)")
    show.set_defaults(handler=_show)
