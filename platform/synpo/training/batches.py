"""Where the trainer's micro-batches come from, epoch by epoch.

:class:`PreferenceTrainer` reads a :class:`PairBatches`: ``train(epoch)`` yields that epoch's
micro-batches (``optim.micro_batch_size`` pairs each), ``validation()`` the validation micro-batches
(None: no validation) and ``steps_per_epoch`` counts optimizer steps. Two sources:

- :class:`InMemoryBatches`: examples already in memory (each video decoded once), reshuffled per
  epoch; the toy warm start, the benchmarks and the tests.
- :class:`ShardedBatches`: one Ray Train worker's equal shard of the pair rows (``rows[rank::world]``
  after a per-epoch seeded shuffle, cut to whole optimizer steps so all ranks step in lockstep);
  videos are read from storage batch by batch, and a resumed run skips the steps it already made.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import torch
from torch.utils.data import DataLoader

from synpo.storage import Storage
from synpo.training.collate import PairBatch, PairExample
from synpo.training.config import TrainConfig
from synpo.training.data import PairDataset
from synpo.video.sampler import VideoSamplingConfig

Collate = Callable[[list[PairExample]], PairBatch]


class PairBatches(Protocol):
    steps_per_epoch: int

    def train(self, epoch: int) -> Iterable[PairBatch]: ...

    def validation(self) -> Iterable[PairBatch] | None: ...


class InMemoryBatches:
    """``examples`` reshuffled every epoch (seeded by ``config.seed`` and the epoch); the last micro-batch may be short."""

    def __init__(self, examples: Sequence[PairExample], collate: Collate, config: TrainConfig, val_examples: Sequence[PairExample] = ()) -> None:
        if not examples:
            raise ValueError("no training examples")
        self.examples, self.val_examples, self.collate = list(examples), list(val_examples), collate
        self.micro_batch_size, self.seed = config.optim.micro_batch_size, config.seed
        micro_batches = math.ceil(len(self.examples) / self.micro_batch_size)
        self.steps_per_epoch = math.ceil(micro_batches / config.accumulation_steps)

    def train(self, epoch: int) -> Iterable[PairBatch]:
        order = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        return DataLoader(self.examples, batch_size=self.micro_batch_size, shuffle=True, generator=order, collate_fn=self.collate)

    def validation(self) -> Iterable[PairBatch] | None:
        if not self.val_examples:
            return None
        return DataLoader(self.val_examples, batch_size=self.micro_batch_size, shuffle=False, collate_fn=self.collate)


def start_loader_process(worker_id: int) -> None:
    """In each DataLoader process: one thread (decoding and collation of one batch at a time; the processes are the
    parallelism, beside the training worker's own threads) and storage clients of its own (not the parent's)."""
    torch.set_num_threads(1)
    dataset = torch.utils.data.get_worker_info().dataset
    dataset.storage = dataset.storage.for_new_process()


def epoch_shard(rows: list[dict], epoch: int, seed: int, rank: int, world: int, rows_per_step: int) -> list[dict]:
    """This rank's rows for ``epoch``: a seeded shuffle, every ``world``-th row, cut to whole steps."""
    order = list(rows)
    random.Random(seed * 1000 + epoch).shuffle(order)
    steps = len(order) // world // rows_per_step
    return order[rank::world][: steps * rows_per_step]


def steps_per_epoch(num_rows: int, world: int, rows_per_step: int) -> int:
    return num_rows // world // rows_per_step


class ShardedBatches:
    """Rank ``rank`` of ``world``: its shard of ``train_rows`` each epoch; validation rows split evenly
    (the remainder dropped, so every rank validates the same number of batches)."""

    def __init__(
        self,
        train_rows: list[dict],
        val_rows: list[dict],
        config: TrainConfig,
        collate: Collate,
        video: VideoSamplingConfig | None,
        storage: Storage,
        rank: int,
        world: int,
        resume_at: tuple[int, int] = (0, 0),
        pin_memory: bool = False,
    ) -> None:
        """``resume_at``: (epoch, optimizer steps already made in it) of the checkpoint a run resumes from;
        ``pin_memory``: page-locked batches, so the copy to the GPU can run beside compute (CUDA only)."""
        self.train_rows, self.config, self.collate = train_rows, config, collate
        self.video, self.storage, self.rank, self.world = video, storage, rank, world
        self.rows_per_step = config.optim.micro_batch_size * config.accumulation_steps
        self.steps_per_epoch = steps_per_epoch(len(train_rows), world, self.rows_per_step)
        self.resume_epoch, self.resume_steps = resume_at
        self.val_shard = val_rows[: len(val_rows) // world * world][rank::world]
        self.pin_memory = pin_memory

    def _loader(self, rows: list[dict]) -> DataLoader:
        """Batches in ``rows`` order; with ``data.num_workers`` processes (one thread each) decoding ahead."""
        dataset = PairDataset(rows, self.video, self.storage)
        settings = self.config.data
        processes = min(settings.num_workers, math.ceil(len(rows) / self.config.optim.micro_batch_size))
        ahead = {"worker_init_fn": start_loader_process, "prefetch_factor": settings.prefetch_batches} if processes else {}
        return DataLoader(
            dataset, batch_size=self.config.optim.micro_batch_size, shuffle=False, collate_fn=self.collate,
            num_workers=processes, pin_memory=self.pin_memory, **ahead,
        )  # fmt: skip

    def train(self, epoch: int) -> Iterable[PairBatch]:
        rows = epoch_shard(self.train_rows, epoch, self.config.seed, self.rank, self.world, self.rows_per_step)
        if epoch == self.resume_epoch:
            rows = rows[self.resume_steps * self.rows_per_step :]
        return self._loader(rows)

    def validation(self) -> Iterable[PairBatch] | None:
        return self._loader(self.val_shard) if self.val_shard else None
