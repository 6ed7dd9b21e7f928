"""Pairs to training examples: read, split, and load each pair's frames on demand."""

from __future__ import annotations

import random
from typing import Any

from torch.utils.data import Dataset

from synpo.pairs.pairgen_output import read_any_pairs
from synpo.storage import Storage
from synpo.training.collate import PairExample
from synpo.video.sampler import VideoSamplingConfig, sample_video


def split_pairs(rows: list[dict[str, Any]], val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Deterministic split by video (pairs of one video never straddle train and validation)."""
    videos = sorted({row["video"] for row in rows})
    random.Random(seed).shuffle(videos)
    held_out = set(videos[: round(len(videos) * val_fraction)]) if val_fraction > 0 else set()
    return [row for row in rows if row["video"] not in held_out], [row for row in rows if row["video"] in held_out]


def load_splits(
    pairs: str, val_pairs: str | None, val_fraction: float, seed: int, storage: Storage
) -> tuple[list[dict], list[dict]]:
    rows = read_any_pairs(pairs, storage)
    if val_pairs:
        return rows, read_any_pairs(val_pairs, storage)
    return split_pairs(rows, val_fraction, seed)


class PairDataset(Dataset):
    """Rows of the pair schema -> :class:`PairExample` with the video's frames sampled (or None for text models)."""

    def __init__(self, rows: list[dict[str, Any]], video: VideoSamplingConfig | None, storage: Storage) -> None:
        self.rows, self.video, self.storage = rows, video, storage

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> PairExample:
        row = self.rows[index]
        frames = metadata = None
        if self.video is not None:
            sampled = sample_video(self.storage.local_path_or_bytes(row["video"]), row["video"], self.video)
            frames, metadata = sampled.frames, sampled.processor_metadata()
        return PairExample(
            pair_id=row["pair_id"],
            prompt=row["prompt"],
            chosen=row["chosen"],
            rejected=row["rejected"],
            frames=frames,
            video_metadata=metadata,
            ref_chosen_logp=row.get("ref_chosen_logp"),
            ref_rejected_logp=row.get("ref_rejected_logp"),
        )
