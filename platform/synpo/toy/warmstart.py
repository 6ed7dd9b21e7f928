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

import torch
from torch.utils.data import DataLoader

from synpo.sampling.prompts import REFINE_TEMPLATE, refine_prompt
from synpo.storage import Storage
from synpo.toy.pairs import toy_pairs
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.training.backend import TorchBackend
from synpo.training.collate import PairCollator
from synpo.training.config import LoraSettings, OptimSettings, ScalingSettings, TrainConfig
from synpo.training.data import PairDataset
from synpo.training.model import add_lora, load_base, trainable_parameters
from synpo.training.trainer import PreferenceTrainer
from synpo.video.sampler import VideoSamplingConfig

WARM_START_VIDEO = VideoSamplingConfig(num_frames=8, max_side=160)


def warm_start(model_dir: str | Path, steps: int = 300, num_videos: int = 96, seed: int = 0, progress: bool = True) -> dict:
    """Fine-tune ``model_dir`` in place on toy captions for ``steps`` optimizer steps; returns the last metrics."""
    model_dir = Path(model_dir)
    torch.manual_seed(seed)
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
        rows = captions + refinements
        config = TrainConfig(
            pairs=work,
            model=str(model_dir),
            objective="sft",
            scaling=ScalingSettings(num_workers=1),
            lora=LoraSettings(enabled=False, train_vision_tower=True),
            optim=OptimSettings(learning_rate=3e-3, warmup_ratio=0.05, effective_batch_size=8, micro_batch_size=8, epochs=10**6, max_steps=steps),
            video=WARM_START_VIDEO,
        )
        config.diagnostics.grad_norm_every_steps = 0
        model, processor = load_base(model_dir)
        model = add_lora(model, config.lora)
        dataset = PairDataset(rows, WARM_START_VIDEO, Storage())
        cached = [dataset[index] for index in range(len(dataset))]  # decode each video once
        collate = PairCollator(processor, max_response_tokens=160)
        history: list[dict] = []

        def batches(epoch: int):
            order = torch.Generator().manual_seed(seed * 7919 + epoch)
            return DataLoader(cached, batch_size=8, shuffle=True, generator=order, collate_fn=collate)

        def log(metrics: dict[str, float], step: int) -> None:
            history.append({"step": step, **metrics})
            if progress and (step % 25 == 0 or step == steps):
                print(f"warm start step {step}/{steps}: chosen NLL {metrics.get('nll/chosen', float('nan')):.3f}", flush=True)

        parameters = [parameter for _, parameter in trainable_parameters(model)]
        trainer = PreferenceTrainer(
            config, model, TorchBackend(parameters, config.optim, steps), batches, None,
            accumulation_steps=1, total_steps=steps, device=torch.device("cpu"), log=log,
        )
        trainer.fit()
    model.save_pretrained(model_dir)
    last = {key: value for key, value in history[-1].items() if key.startswith(("nll/", "loss"))}
    (model_dir / "synpo_warm_start.json").write_text(json.dumps({"steps": steps, "num_videos": num_videos, "seed": seed, **last}, indent=1))
    return last
