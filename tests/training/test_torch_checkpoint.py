"""The plain-PyTorch backend's checkpoints: a save -> load round trip restores everything; a crafted file runs nothing."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from synpo.training.backend import TorchBackend
from synpo.training.config import OptimSettings

SETTINGS = OptimSettings(learning_rate=1e-2, warmup_ratio=0.25, effective_batch_size=2, micro_batch_size=2)


def backend_for(layer: torch.nn.Linear) -> TorchBackend:
    return TorchBackend(layer, SETTINGS, total_steps=8)


def test_round_trip_restores_weights_optimizer_and_schedule(tmp_path):
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    backend = backend_for(layer)
    for _ in range(3):
        backend.backward(layer(torch.randn(5, 4)).pow(2).mean(), accumulation_steps=1)
        backend.step()
    backend.save(tmp_path)

    fresh = torch.nn.Linear(4, 3)
    restored = backend_for(fresh)
    restored.load(tmp_path)
    assert torch.equal(fresh.weight, layer.weight) and torch.equal(fresh.bias, layer.bias)
    assert restored.learning_rate == backend.learning_rate and restored.scheduler.last_epoch == 3
    moments = restored.optimizer.state_dict()["state"][0]
    assert torch.equal(moments["exp_avg"], backend.optimizer.state_dict()["state"][0]["exp_avg"]) and float(moments["step"]) == 3


class RunsCodeWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_crafted_checkpoint_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"trainable": RunsCodeWhenUnpickled(marker), "optimizer": {}, "scheduler": {}}, tmp_path / "torch_state.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        backend_for(torch.nn.Linear(4, 3)).load(tmp_path)
    assert not marker.exists()
