"""The chosen/rejected gradient split (Fig. 3's diagnostic) runs after the micro-batch's backward, on one pair.

Before, it ran while the step's graph was alive (under DeepSpeed with a second full forward): doubled
activation memory on every diagnostic step. The order and the pair count are what a CPU can show.
"""

from __future__ import annotations

from synpo.training import trainer as trainer_module
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
from synpo.video.sampler import VideoSamplingConfig


def test_the_split_follows_backward_and_uses_one_pair(tiny_vlm, toy_pair_rows, monkeypatch):
    from synpo.storage import Storage

    video = VideoSamplingConfig(num_frames=4, max_side=112)
    config = TrainConfig(
        pairs="in-memory", model=str(tiny_vlm), objective="synpo", scaling=ScalingSettings(num_workers=1),
        deepspeed=DeepSpeedSettings(enabled=False), lora=LoraSettings(rank=4, alpha=8, dropout=0.0),
        optim=OptimSettings(effective_batch_size=4, micro_batch_size=2, max_steps=2, warmup_ratio=0.0),
        diagnostics=DiagnosticsSettings(grad_norm_every_steps=1), video=video,
    )  # fmt: skip
    policy = load_policy(config, tiny_vlm)
    dataset = PairDataset(toy_pair_rows[:4], video, Storage())
    batches = InMemoryBatches([dataset[index] for index in range(4)], PairCollator(policy.processor, 32), config)
    trainer = build_trainer(config, policy, batches)
    events = []
    backward, split = trainer.backend.backward, trainer_module.gradient_split

    def recording_backward(loss, accumulation):
        events.append("backward")
        return backward(loss, accumulation)

    def recording_split(result, parameters):
        events.append(("split", len(result.output.chosen_rewards)))
        return split(result, parameters)

    monkeypatch.setattr(trainer.backend, "backward", recording_backward)
    monkeypatch.setattr(trainer_module, "gradient_split", recording_split)
    history = trainer.fit().history
    # 2 steps x 2 micro-batches; the split on each step's first micro-batch, after its backward, on 1 pair
    assert events == ["backward", ("split", 1), "backward"] * 2
    assert all(row["grad_norm/chosen"] > 0 and row["grad_norm/rejected"] > 0 for row in history if "grad_norm/chosen" in row)
    assert sum("grad_norm/chosen" in row for row in history) == 2
