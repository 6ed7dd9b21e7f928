"""``synpo toy videos`` and ``synpo toy model``: the toy world and tiny models, built offline."""

from __future__ import annotations

import argparse

from synpo.toy.families import DEFAULT_FAMILY, FAMILIES
from synpo.toy.videos import ToyVideoSpec, write_toy_videos


def _videos(args: argparse.Namespace) -> int:
    spec = ToyVideoSpec(width=args.width, height=args.height, fps=args.fps, min_duration_s=args.min_duration_s, max_duration_s=args.max_duration_s)
    rows = write_toy_videos(args.out, args.count, seed=args.seed, spec=spec)
    print(f"wrote {len(rows)} toy videos + ground truth + manifest.jsonl to {args.out}")
    return 0


def _model(args: argparse.Namespace) -> int:
    from synpo.toy.model import build_tiny_model

    steps = warm_start_steps(args)
    path = build_tiny_model(args.out, kind=args.kind, seed=args.seed, force=args.force, warm_start_steps=steps, family=args.family)
    print(f"tiny {args.kind} model ({args.family if args.kind == 'vlm' else 'qwen2'}) ready at {path}")
    return 0


def warm_start_steps(args: argparse.Namespace) -> int:
    """``--warm-start-steps``, else a VLM that captions (toy://tiny-vlm's recipe) and an untrained text LM."""
    from synpo.models import TOY_MODELS

    if args.warm_start_steps is not None:
        return args.warm_start_steps
    return TOY_MODELS["tiny-vlm"][1] if args.kind == "vlm" else 0


def register(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    toy = commands.add_parser("toy", help="toy videos and tiny models for tests and demos")
    sub = toy.add_subparsers(dest="toy_command", required=True, metavar="WHAT")

    videos = sub.add_parser("videos", help="write synthetic mp4 videos with ground-truth captions")
    videos.add_argument("--out", required=True, help="output folder or URI (local, file://, s3://)")
    videos.add_argument("--count", type=int, required=True, help="number of videos")
    videos.add_argument("--seed", type=int, default=0, help="dataset seed (same seed, same videos)")
    videos.add_argument("--width", type=int, default=160, help="frame width in pixels (even)")
    videos.add_argument("--height", type=int, default=120, help="frame height in pixels (even)")
    videos.add_argument("--fps", type=int, default=8, help="frames per second")
    videos.add_argument("--min-duration-s", type=int, default=5, help="shortest video, seconds")
    videos.add_argument("--max-duration-s", type=int, default=40, help="longest video, seconds")
    videos.set_defaults(handler=_videos)

    model = sub.add_parser("model", help="build a tiny video VLM (qwen2-vl, qwen2.5-vl, qwen3-vl, llava-onevision, llava-next-video) or Qwen2 (text) model folder offline")
    model.add_argument("--out", required=True, help="output folder")
    model.add_argument("--kind", choices=("vlm", "text"), default="vlm", help="video VLM or text-only LM")
    model.add_argument("--seed", type=int, default=0, help="weight-initialisation seed")
    model.add_argument("--family", choices=FAMILIES, default=DEFAULT_FAMILY, help="VLM only: the video VLM architecture")
    model.add_argument(
        "--force", action="store_true",
        help="rebuild even if the folder holds this recipe already; also rebuilds a half-built folder (no synpo_toy_model.json), replacing it",
    )
    model.add_argument(
        "--warm-start-steps", type=int, default=None,
        help="VLM only: fine-tune on toy-world captions for N steps so it writes caption-like text (~0.2 s/step on CPU); "
        "default 300 for a VLM (the toy://tiny-vlm recipe: it captions), 0 for a text LM; 0 = random weights",
    )
    model.set_defaults(handler=_model)
    return sub
