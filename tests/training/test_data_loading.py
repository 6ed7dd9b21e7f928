"""Each training worker reads its videos in DataLoader processes of its own (data.num_workers), ahead of the step:
the batches are the same, in the same order, as read in the worker itself; each process runs one thread and
opens storage clients of its own."""

from __future__ import annotations

import torch

from synpo.storage import Storage
from synpo.training.batches import ShardedBatches
from synpo.training.collate import PairCollator
from synpo.training.config import DataLoaderSettings, OptimSettings, ScalingSettings, TrainConfig
from synpo.training.model import load_base
from synpo.video.sampler import VideoSamplingConfig

VIDEO = VideoSamplingConfig(num_frames=4, max_side=96)


class RecordingCollate:
    """The real collator, plus where it ran: its process's thread count and whether that process has its own client."""

    def __init__(self, processor) -> None:
        self.collate = PairCollator(processor, 32)

    def __call__(self, examples):
        info = torch.utils.data.get_worker_info()
        own_client = info is None or info.dataset.storage._s3_client is None
        return self.collate(examples), torch.get_num_threads(), own_client


def test_loader_processes_give_the_same_batches_with_one_thread_each(tiny_vlm, toy_pair_rows, s3_storage):
    _, processor = load_base(tiny_vlm)
    storage, _ = s3_storage
    storage._s3()  # the training worker's client exists before the loader forks
    batches = {}
    for processes in (0, 2):
        config = TrainConfig(pairs="rows", video=VIDEO, scaling=ScalingSettings(num_workers=1), data=DataLoaderSettings(num_workers=processes, prefetch_batches=3),
                             optim=OptimSettings(effective_batch_size=2, micro_batch_size=2), deepspeed={"enabled": False})  # fmt: skip
        source = ShardedBatches(toy_pair_rows, toy_pair_rows[:4], config, RecordingCollate(processor), VIDEO, storage, rank=0, world=1)
        loader = source.train(0)
        assert loader.num_workers == processes and (processes == 0 or loader.prefetch_factor == 3) and not loader.pin_memory
        batches[processes] = list(loader)
    assert [threads for _, threads, _ in batches[2]] == [1] * len(batches[2]) and all(own for _, _, own in batches[2])
    assert len(batches[0]) == len(batches[2]) == len(toy_pair_rows) // 2
    for (inline, _, _), (ahead, _, _) in zip(batches[0], batches[2], strict=True):
        assert inline.pair_ids == ahead.pair_ids and torch.equal(inline.input_ids, ahead.input_ids)
        assert all(torch.equal(inline.videos[key], ahead.videos[key]) for key in inline.videos)
    pinned = ShardedBatches(toy_pair_rows, [], config, RecordingCollate(processor), VIDEO, storage, rank=0, world=1, pin_memory=True)
    assert pinned.train(0).pin_memory  # set by the worker on CUDA devices (pinning itself needs a GPU)


def test_a_batch_moves_every_tensor_videos_included(tiny_vlm, toy_pair_rows):
    _, processor = load_base(tiny_vlm)
    from synpo.training.data import PairDataset

    batch = PairCollator(processor, 32)([PairDataset(toy_pair_rows, VIDEO, Storage())[0]])
    moved = batch.to(torch.device("meta"), non_blocking=True)
    assert moved.input_ids.device.type == "meta" and all(value.device.type == "meta" for value in moved.videos.values())
    assert moved.pair_ids == batch.pair_ids and batch.input_ids.device.type == "cpu"
