"""Teach the tiny random VLM the toy world's language: a short supervised fine-tune on toy captions.

A randomly initialised model gives every token ~1/vocab probability, so preference objectives that
work on probabilities (SynPO's G and A) have almost no gradient, and its "captions" are token soup.
``warm_start`` generates toy videos, then runs the platform's own training loop with the ``sft``
objective and full fine-tuning (vision tower included) for a few hundred steps, on two kinds of
examples — caption the video; refine a flawed previous description (retrospection's second pass) —
and saves the result over the model folder. The model then writes toy-world-like captions — with mistakes, which is what
preference learning is for.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from synpo.sampling.prompts import REFINE_TEMPLATE, refine_prompt
from synpo.storage import Storage
from synpo.toy.pairs import toy_pairs
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.training.batches import InMemoryBatches
from synpo.training.collate import PairCollator
from synpo.training.config import (
    DeepSpeedSettings,
    DiagnosticsSettings,
    LoraSettings,
    OptimSettings,
    ScalingSettings,
    TrainConfig,
)
from synpo.training.data import PairDataset
from synpo.training.recipe import build_trainer, load_policy
from synpo.training.trainer import LoopHooks
from synpo.video.sampler import VideoSamplingConfig

WARM_START_VIDEO = VideoSamplingConfig(num_frames=8, max_side=160)


def warm_start(model_dir: str | Path, steps: int = 300, num_videos: int = 96, seed: int = 0, progress: bool = True) -> dict:
    """Fine-tune ``model_dir`` in place on toy captions for ``steps`` optimizer steps; returns the last metrics."""
    model_dir = Path(model_dir)
    config = TrainConfig(
        pairs="in-memory",
        model=str(model_dir),
        objective="sft",
        seed=seed,
        scaling=ScalingSettings(num_workers=1),
        deepspeed=DeepSpeedSettings(enabled=False),
        lora=LoraSettings(enabled=False, train_vision_tower=True),
        optim=OptimSettings(learning_rate=3e-3, warmup_ratio=0.05, effective_batch_size=8, micro_batch_size=8, epochs=10**6, max_steps=steps),
        diagnostics=DiagnosticsSettings(grad_norm_every_steps=0),
        video=WARM_START_VIDEO,
    )
    policy = load_policy(config, model_dir)
    history: list[dict] = []

    def log(metrics: dict[str, float], step: int) -> None:
        history.append({"step": step, **metrics})
        if progress and (step % 25 == 0 or step == steps):
            print(f"warm start step {step}/{steps}: chosen NLL {metrics.get('nll/chosen', float('nan')):.3f}", flush=True)

    with tempfile.TemporaryDirectory(prefix="synpo-warmstart-") as work:
        spec = ToyVideoSpec(min_duration_s=5, max_duration_s=20)
        write_toy_videos(work, num_videos, seed=10_000 + seed, spec=spec, progress=progress)
        captions = toy_pairs(work, seed=seed)
        # Also teach the second pass of retrospection: given a flawed previous description (the pair's
        # rejected caption, one fact altered), write the true caption.
        refinements = [
            {**row, "pair_id": f"{row['pair_id']}-refine", "prompt": refine_prompt(REFINE_TEMPLATE, row["prompt"], row["rejected"])}
            for row in captions
        ]
        dataset = PairDataset(captions + refinements, WARM_START_VIDEO, Storage())
        examples = [dataset[index] for index in range(len(dataset))]  # decode each video once
    batches = InMemoryBatches(examples, PairCollator(policy.processor, max_response_tokens=160), config)
    build_trainer(config, policy, batches, hooks=LoopHooks(log=log)).fit()
    policy.model.save_pretrained(model_dir)
    last = {key: value for key, value in history[-1].items() if key.startswith(("nll/", "loss"))}
    (model_dir / "synpo_warm_start.json").write_text(json.dumps({"steps": steps, "num_videos": num_videos, "seed": seed, **last}, indent=1))
    return last
