"""``synpo pairs ...`` (precompute reference log-probs) and ``synpo toy pairs`` helpers."""

from __future__ import annotations

import argparse

from synpo.pairs import read_pairs, write_pairs
from synpo.storage import Storage


def _add_reference(args: argparse.Namespace) -> int:
    from synpo.training.reference import add_reference_logps
    from synpo.video.sampler import VideoSamplingConfig

    rows = read_pairs(args.pairs)
    video = VideoSamplingConfig(num_frames=args.num_frames, max_side=args.max_side)
    enriched = add_reference_logps(rows, args.model, video, args.max_response_tokens, args.batch_size, args.device)
    write_pairs(enriched, args.out)
    print(f"wrote {len(enriched)} pairs with ref_chosen_logp/ref_rejected_logp to {args.out}")
    return 0


def _toy_pairs(args: argparse.Namespace) -> int:
    from synpo.toy.pairs import toy_pairs

    rows = toy_pairs(args.videos, seed=args.seed, storage=Storage())
    write_pairs(rows, args.out)
    print(f"wrote {len(rows)} known-answer toy pairs to {args.out}")
    return 0


def register(commands: argparse._SubParsersAction, toy_commands: argparse._SubParsersAction) -> None:
    pairs = commands.add_parser("pairs", help="preference-pair datasets")
    sub = pairs.add_subparsers(dest="pairs_command", required=True, metavar="WHAT")
    reference = sub.add_parser("add-reference", help="precompute reference log-probs (base model) beside the pairs")
    reference.add_argument("--pairs", required=True, help="pairs URI (.parquet/.jsonl file or folder)")
    reference.add_argument("--model", required=True, help="base model folder (the reference)")
    reference.add_argument("--out", required=True, help="output .parquet or .jsonl URI")
    reference.add_argument("--num-frames", type=int, default=16, help="frames per video (match the training config)")
    reference.add_argument("--max-side", type=int, default=448, help="frame size (match the training config)")
    reference.add_argument("--max-response-tokens", type=int, default=512, help="match the training config")
    reference.add_argument("--batch-size", type=int, default=4, help="pairs per forward pass")
    reference.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    reference.set_defaults(handler=_add_reference)

    toy = toy_commands.add_parser("pairs", help="known-answer pairs from toy videos' ground truth (one fact altered)")
    toy.add_argument("--videos", required=True, help="folder or URI written by `synpo toy videos`")
    toy.add_argument("--out", required=True, help="output .parquet or .jsonl URI")
    toy.add_argument("--seed", type=int, default=0, help="which facts get altered")
    toy.set_defaults(handler=_toy_pairs)
