"""``synpo pairs ...`` (precompute reference log-probs, export for other trainers, HTML report) and ``synpo toy pairs``."""

from __future__ import annotations

import argparse
import json

from synpo.pairs import read_pairs, write_pairs
from synpo.storage import Storage


def _add_reference(args: argparse.Namespace) -> int:
    from synpo.config.loader import config_from_fields
    from synpo.training.reference import add_reference_logps
    from synpo.video.sampler import VideoSamplingConfig

    Storage().check_writable(args.out, "--out", folder=False)
    rows = read_pairs(args.pairs)
    video = config_from_fields(VideoSamplingConfig, "synpo pairs add-reference flags", num_frames=args.num_frames, max_side=args.max_side)
    enriched = add_reference_logps(rows, args.model, video, args.max_response_tokens, args.batch_size, args.device)
    write_pairs(enriched, args.out)
    print(f"wrote {len(enriched)} pairs with ref_chosen_logp/ref_rejected_logp to {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from synpo.pairs.export import export_pairs, llamafactory_dataset_info

    Storage().check_writable(args.out, "--out", folder=False)
    count = export_pairs(args.pairs, args.out, args.format, args.video_root, args.video_prefix)
    print(f"wrote {count} pairs in {args.format} format to {args.out}")
    if args.format == "llamafactory":
        file_name = args.out.rstrip("/").rsplit("/", 1)[-1]
        entry = llamafactory_dataset_info(file_name.removesuffix(".json"), file_name)
        print("add this entry to LLaMA-Factory's dataset_info.json (file_name relative to its dataset_dir):")
        print(json.dumps(entry, indent=2))
    return 0


def _report(args: argparse.Namespace) -> int:
    from synpo.pairs.report import build_report

    Storage().check_writable(args.out, "--out", folder=False)
    summary = build_report(args.pairs, args.out, args.limit, args.thumbnails, args.audit)
    audit = "with judge audit" if summary.with_audit else "without audit"
    unreadable = f", {summary.unreadable_videos} video(s) unreadable (noted in the page)" if summary.unreadable_videos else ""
    print(f"wrote {summary.out}: {summary.pairs} pairs {audit}{unreadable}")
    return 0


def _toy_pairs(args: argparse.Namespace) -> int:
    from synpo.toy.pairs import toy_pairs

    Storage().check_writable(args.out, "--out", folder=False)
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

    export = sub.add_parser("export", help="write the pairs for LLaMA-Factory (ShareGPT JSON) or TRL (conversational JSONL)")
    export.add_argument("--pairs", required=True, help="pairs URI: .parquet/.jsonl/.json file, folder of parts, or a pair-generation output")
    export.add_argument("--out", required=True, help="output URI: .json for llamafactory, .jsonl for trl (local or s3://)")
    export.add_argument("--format", required=True, choices=("llamafactory", "trl"), help="target trainer's dataset format")
    export.add_argument("--video-root", help="rewrite video URIs to live under this folder (e.g. /data/videos/ after copying)")
    export.add_argument("--video-prefix", help="the prefix --video-root replaces (default: the videos' common folder)")
    export.set_defaults(handler=_export)

    report = sub.add_parser("report", help="a static HTML page with thumbnails, captions, scores and the judge's reasoning")
    report.add_argument("--pairs", required=True, help="pairs URI: a pairs file/folder or a pair-generation output (adds the audit)")
    report.add_argument("--out", required=True, help="output .html URI")
    report.add_argument("--audit", help="audit table (file or folder of parts) when --pairs is not a pair-generation output")
    report.add_argument("--limit", type=int, help="show only the first N pairs")
    report.add_argument("--thumbnails", type=int, default=6, help="frame thumbnails per pair (0 = none)")
    report.set_defaults(handler=_report)

    toy = toy_commands.add_parser("pairs", help="known-answer pairs from toy videos' ground truth (one fact altered)")
    toy.add_argument("--videos", required=True, help="folder or URI written by `synpo toy videos`")
    toy.add_argument("--out", required=True, help="output .parquet or .jsonl URI")
    toy.add_argument("--seed", type=int, default=0, help="which facts get altered")
    toy.set_defaults(handler=_toy_pairs)
