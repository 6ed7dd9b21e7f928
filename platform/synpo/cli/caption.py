"""``synpo caption --model DIR --video PATH_OR_URI``: caption one video with any engine and mode.

Flags are shorthands for config keys (``--n 4`` is ``sampling.n=4``); ``key=value`` overrides and
``--config FILE`` (a :class:`CaptionConfig` YAML) reach every other field. By
default it prints one greedy caption per line; ``--json`` prints one JSON object with every
candidate (text, token ids, finish reason, log-probs) and, after retrospection, its first pass.
"""

from __future__ import annotations

import argparse
import json

import pydantic

from synpo.config.base import StrictModel
from synpo.config.loader import load_config
from synpo.sampling.engine import EngineSettings, build_engine
from synpo.sampling.prompts import CAPTION_PROMPT, REFINE_TEMPLATE
from synpo.sampling.request import CaptionRequest, ContrastiveSettings, Mode, RefineTemplate, SamplingParams
from synpo.storage import Storage, StorageConfig
from synpo.video.sampler import VideoSamplingConfig, sample_video


class CaptionConfig(StrictModel):
    """`synpo caption`: caption one video with a local model folder (one greedy caption unless told otherwise)."""

    engine: EngineSettings = pydantic.Field(default_factory=EngineSettings, description="engine, model and adapter")
    prompt: str = pydantic.Field(default=CAPTION_PROMPT, min_length=1, description="the captioning instruction")
    mode: Mode = pydantic.Field(
        default="plain", description="plain, retrospective (two passes), contrastive (CD) or both (CD in both passes)"
    )
    sampling: SamplingParams = pydantic.Field(
        default_factory=lambda: SamplingParams(n=1, temperature=0.0, max_new_tokens=128),
        description="decoding (defaults here: one greedy caption; candidates use n=10, temperature=0.9)",
    )
    contrastive: ContrastiveSettings = pydantic.Field(default_factory=ContrastiveSettings, description="contrastive decoding")
    refine_template: RefineTemplate = pydantic.Field(default=REFINE_TEMPLATE, description="retrospective pass prompt ({prompt}, {previous})")
    video: VideoSamplingConfig = pydantic.Field(default_factory=VideoSamplingConfig, description="frame sampling")
    storage: StorageConfig = pydantic.Field(default_factory=StorageConfig, description="object storage (for s3:// videos)")

    @pydantic.model_validator(mode="after")
    def _engine_serves_mode(self) -> CaptionConfig:
        self.engine.check_mode(self.mode)
        return self


# flag attribute -> config key
FLAG_KEYS = {
    "model": "engine.model",
    "adapter": "engine.adapter",
    "device": "engine.device",
    "engine": "engine.kind",
    "prompt": "prompt",
    "mode": "mode",
    "n": "sampling.n",
    "seed": "sampling.seed",
    "temperature": "sampling.temperature",
    "top_p": "sampling.top_p",
    "top_k": "sampling.top_k",
    "max_new_tokens": "sampling.max_new_tokens",
    "cd_alpha": "contrastive.alpha",
    "cd_cutoff": "contrastive.cutoff",
}


def _caption(args: argparse.Namespace) -> int:
    overrides = [f"{key}={json.dumps(getattr(args, flag))}" for flag, key in FLAG_KEYS.items() if getattr(args, flag) is not None]
    if args.json:
        overrides.append("sampling.logprobs=true")
    config = load_config(CaptionConfig, args.config, [*overrides, *args.overrides])
    sampled = sample_video(Storage(config.storage).local_path_or_bytes(args.video), args.video, config.video)
    engine = build_engine(config.engine, Storage(config.storage))
    request = CaptionRequest(
        request_id=args.video,
        prompt=config.prompt,
        frames=sampled.frames,
        sparse_frames=sampled.sparse_frames,
        duration_s=sampled.info.duration_s,
        params=config.sampling,
        mode=config.mode,
        contrastive=config.contrastive,
        refine_template=config.refine_template,
    )
    result = engine.generate([request])[0]
    if args.json:
        print(json.dumps({"video": args.video, **result.to_dict()}))
    else:
        for candidate in result.candidates:
            print(candidate.text)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    caption = commands.add_parser("caption", help="caption one video with a local model")
    caption.add_argument("--video", required=True, help="video path or URI (local, file://, s3://)")
    caption.add_argument("--model", default=None, help="model: a local folder, s3:// prefix, hub id or toy://tiny-vlm")
    caption.add_argument("--adapter", default=None, help="LoRA adapter folder (e.g. a training run's best adapter)")
    caption.add_argument("--engine", choices=["hf", "vllm"], default=None, help="hf (default; CD works) or vllm (no CD)")
    caption.add_argument("--device", default=None, help="hf engine: auto, cpu or cuda[:N]")
    caption.add_argument("--prompt", default=None, help="captioning instruction")
    caption.add_argument(
        "--mode", choices=["plain", "retrospective", "contrastive", "both"], default=None, help="decoding mode (default plain)"
    )
    caption.add_argument("--n", type=int, default=None, help="captions to sample (needs --temperature > 0 when > 1)")
    caption.add_argument("--seed", type=int, default=None, help="random seed")
    caption.add_argument("--temperature", type=float, default=None, help="sampling temperature (0 = greedy, the default)")
    caption.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")
    caption.add_argument("--top-k", type=int, default=None, help="keep the k most likely tokens (0 = off)")
    caption.add_argument("--max-new-tokens", type=int, default=None, help="most tokens generated per pass")
    caption.add_argument("--cd-alpha", type=float, default=None, help="contrastive decoding weight a (default 0.5)")
    caption.add_argument("--cd-cutoff", type=float, default=None, help="plausibility cutoff b (default 0.1; 0 = off)")
    caption.add_argument("--json", action="store_true", help="print one JSON object with every candidate and its first pass")
    caption.add_argument("--config", default=None, help="YAML CaptionConfig (see `synpo config show caption`)")
    caption.add_argument("overrides", nargs="*", help="key=value overrides, e.g. video.num_frames=8")
    caption.set_defaults(handler=_caption)
