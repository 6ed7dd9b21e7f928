"""What the training loop agrees on across Ray Train workers (``torch.distributed``): metric means, a
flag every rank must share (a finite loss) and, on the rare path, each rank's details. Without a
process group (one worker, the tests, the toy warm start) each is the identity."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def _distributed() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def make_reducer(device: torch.device):
    """Weighted mean of metric dicts over all workers (every rank passes the same keys)."""

    def reduce(metrics: dict[str, float], weight: float) -> dict[str, float]:
        if not _distributed() or not metrics:
            return metrics
        keys = sorted(metrics)
        values = torch.tensor([metrics[key] * weight for key in keys] + [weight], dtype=torch.float64, device=device)
        dist.all_reduce(values)
        return {key: float(values[index] / values[-1]) for index, key in enumerate(keys)}

    return reduce


def make_all_true(device: torch.device):
    """True on every rank when ``flag`` is True on every rank (one all-reduce of one number)."""

    def all_true(flag: bool) -> bool:
        if not _distributed():
            return flag
        value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    return all_true


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if not _distributed():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered
