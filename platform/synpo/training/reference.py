"""Precompute reference log-likelihoods once and store them beside the pairs.

Reference-based objectives (DPO, IPO, DPOP, KTO) need ``sum log pi_ref`` of every chosen and rejected
response. Computing them once up front with the base model (``reference=precomputed`` in training)
removes the reference forward pass from every training step. Use the same ``video`` sampling and
``max_response_tokens`` as the training run, or the numbers will not match what training sees.
On a GPU the model runs in bf16, as the training workers' reference pass does (log-softmax in float32).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from synpo.sampling.device import pick_device
from synpo.storage import Storage
from synpo.training.collate import PairCollator
from synpo.training.data import PairDataset
from synpo.training.logprobs import response_logps
from synpo.training.model import is_video_model, load_base, training_dtype
from synpo.video.sampler import VideoSamplingConfig


@torch.no_grad()
def add_reference_logps(
    rows: list[dict[str, Any]],
    model_dir: str,
    video: VideoSamplingConfig,
    max_response_tokens: int = 512,
    batch_size: int = 4,
    device: str = "auto",
    storage: Storage | None = None,
) -> list[dict[str, Any]]:
    """Copies of ``rows`` with ``ref_chosen_logp`` / ``ref_rejected_logp`` filled in by the base model."""
    torch_device = pick_device(device)
    model, processor = load_base(model_dir, dtype=training_dtype(torch_device), device=torch_device)  # bf16 straight onto a GPU
    model = model.to(torch_device).eval()
    dataset = PairDataset(rows, video if is_video_model(model_dir) else None, storage or Storage())
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=PairCollator(processor, max_response_tokens))
    by_id: dict[str, tuple[float, float]] = {}
    for batch in tqdm(loader, desc="reference log-probs", unit="batch"):
        logps = response_logps(model, batch.to(torch_device))
        chosen = torch.where(logps.chosen_mask, logps.chosen_logps, 0.0).sum(-1).tolist()
        rejected = torch.where(logps.rejected_mask, logps.rejected_logps, 0.0).sum(-1).tolist()
        by_id.update(zip(batch.pair_ids, zip(chosen, rejected, strict=True), strict=True))
    return [{**row, "ref_chosen_logp": by_id[row["pair_id"]][0], "ref_rejected_logp": by_id[row["pair_id"]][1]} for row in rows]
