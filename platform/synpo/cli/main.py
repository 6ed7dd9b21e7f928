"""``synpo``: the platform's command line. Run ``synpo --help`` or ``synpo COMMAND --help``."""

from __future__ import annotations

import argparse
import sys

from synpo.cli import caption, config_cmd, judge_cmd, pairs_cmd, serve_cmd, toy
from synpo.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synpo", description="Preference learning for video-captioning VLMs (SynPO).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    toy_commands = toy.register(commands)
    pairs_cmd.register(commands, toy_commands)
    caption.register(commands)
    judge_cmd.register(commands)
    config_cmd.register(commands)
    serve_cmd.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options (`show train --config x.yaml a.b=1`)
    if extra:
        if not hasattr(args, "overrides") or not all("=" in item and not item.startswith("-") for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        return args.handler(args) or 0
    except UserError as error:  # anything else is a bug: it keeps its traceback
        print(f"synpo {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
