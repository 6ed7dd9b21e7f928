"""``synpo caption --model DIR --video PATH_OR_URI``: caption one video."""

from __future__ import annotations

import argparse
import json

from synpo.config.jobs import CaptionConfig
from synpo.config.loader import load_config
from synpo.storage import Storage, parse_uri
from synpo.video.sampler import sample_video


def _caption(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    for flag, key in (("model", "model"), ("adapter", "adapter"), ("device", "device"), ("prompt", "prompt")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={json.dumps(getattr(args, flag))}")
    config = load_config(CaptionConfig, args.config, overrides)
    from synpo.sampling.hf_engine import HFCaptioner

    location = parse_uri(args.video)
    source = location.path if location.scheme == "file" else Storage(config.storage).read_bytes(args.video)
    sampled = sample_video(source, args.video, config.video)
    captioner = HFCaptioner(config.model, device=config.device, adapter=config.adapter)
    for caption in captioner.caption(sampled.frames, config.prompt, config.generation):
        print(caption.text)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    caption = commands.add_parser("caption", help="caption one video with a local model")
    caption.add_argument("--model", default=None, help="local Hugging Face model folder")
    caption.add_argument("--adapter", default=None, help="LoRA adapter folder (e.g. runs/train/best_adapter)")
    caption.add_argument("--video", required=True, help="video path or URI (local, file://, s3://)")
    caption.add_argument("--prompt", default=None, help="captioning instruction")
    caption.add_argument("--device", default=None, help="auto, cpu or cuda[:N]")
    caption.add_argument("--config", default=None, help="YAML CaptionConfig (see `synpo config show caption`)")
    caption.add_argument("overrides", nargs="*", help="key=value overrides, e.g. generation.max_new_tokens=64")
    caption.set_defaults(handler=_caption)
