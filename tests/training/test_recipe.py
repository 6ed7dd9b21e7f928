"""The one training recipe: configs are never changed, the objective follows from its name, both
backends come out of the same builder, and the batch sources shard and resume as documented."""

from __future__ import annotations

import pydantic
import pytest
import torch

from synpo.losses import get_objective
from synpo.losses.synpo import synpo_loss
from synpo.storage import Storage
from synpo.training.batches import InMemoryBatches, ShardedBatches
from synpo.training.collate import PairCollator, PairExample
from synpo.training.config import (
    DeepSpeedSettings,
    DiagnosticsSettings,
    LoraSettings,
    OptimSettings,
    ScalingSettings,
    TrainConfig,
)
from synpo.training.recipe import build_trainer, load_policy
from synpo.training.trainer import LoopHooks


def config_for(**changes) -> TrainConfig:
    return TrainConfig(pairs="in-memory", scaling=ScalingSettings(num_workers=1), **changes)


def test_the_variant_follows_from_the_objective_name_only():
    with pytest.raises(pydantic.ValidationError, match=r"'synpo_v1' has no hyperparameter\(s\) \['variant'\].*objective=synpo_v3"):
        config_for(objective="synpo_v1", hyperparameters={"variant": "v3"})
    with pytest.raises(pydantic.ValidationError, match="hyperparameters.alpha"):
        config_for(objective="synpo", hyperparameters={"alpha": "large"})
    generator = torch.Generator().manual_seed(0)
    chosen, rejected = -torch.rand(3, 5, generator=generator, dtype=torch.float64), -torch.rand(3, 4, generator=generator, dtype=torch.float64)
    masks = torch.ones(3, 5, dtype=torch.bool), torch.ones(3, 4, dtype=torch.bool)
    for variant in ("v1", "v2", "v3", "v4", "v5"):
        configured = config_for(objective=f"synpo_{variant}", hyperparameters={"alpha": 3.0, "beta": 0.5}).loss_objective()
        expected = synpo_loss(chosen, masks[0], rejected, masks[1], alpha=3.0, beta=0.5, variant=variant).losses
        assert torch.equal(configured(chosen, masks[0], rejected, masks[1]).losses, expected), variant
    assert get_objective("synpo").configure({"beta": 1}).hyperparameters == {"alpha": 30.0, "beta": 1.0}


def test_a_config_is_never_changed_after_validation():
    config = config_for()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.diagnostics.grad_norm_every_steps = 0
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.objective = "dpo"


def examples(count: int) -> list[PairExample]:
    colours = ["red", "blue", "green", "yellow", "white"]
    return [
        PairExample(f"p{index}", "Describe the video.", f"a {colours[index % 5]} circle moves left", f"a {colours[(index + 1) % 5]} square moves up")
        for index in range(count)
    ]


def test_in_memory_batches_reshuffle_per_epoch_and_count_trailing_steps():
    config = config_for(optim=OptimSettings(effective_batch_size=4, micro_batch_size=2))  # 2 micro-batches per step
    batches = InMemoryBatches(examples(9), lambda items: [item.pair_id for item in items], config)
    assert batches.steps_per_epoch == 3  # 5 micro-batches (the last one short): 2 + 2 + 1
    epoch0, epoch1 = list(batches.train(0)), list(batches.train(1))
    assert [len(batch) for batch in epoch0] == [2, 2, 2, 2, 1]
    assert sorted(sum(epoch0, [])) == sorted(sum(epoch1, [])) == sorted(f"p{index}" for index in range(9))
    assert epoch0 != epoch1 and epoch0 == list(batches.train(0))
    assert batches.validation() is None


def test_sharded_batches_give_each_rank_equal_disjoint_whole_steps_and_resume_mid_epoch():
    config = TrainConfig(pairs="rows", scaling=ScalingSettings(num_workers=2), optim=OptimSettings(effective_batch_size=4, micro_batch_size=1))
    rows = [{"pair_id": f"p{index}", "video": f"v{index}.mp4", "prompt": "x", "chosen": "a", "rejected": "b"} for index in range(11)]
    val_rows = rows[:5]

    def shard(rank: int, resume_at=(0, 0)) -> ShardedBatches:
        return ShardedBatches(rows, val_rows, config, lambda items: [item.pair_id for item in items], None, Storage(), rank, 2, resume_at)

    ranks = [shard(0), shard(1)]
    assert ranks[0].steps_per_epoch == 2  # 11 rows // 2 ranks // (1 pair x 2 accumulation)
    seen = [sum(list(rank.train(3)), []) for rank in ranks]
    assert len(seen[0]) == len(seen[1]) == 4 and not set(seen[0]) & set(seen[1])
    assert [sum(list(rank.validation()), []) for rank in ranks] == [["p0", "p2"], ["p1", "p3"]]  # 5 -> 4: the remainder dropped
    resumed = shard(0, resume_at=(3, 1))
    assert sum(list(resumed.train(3)), []) == seen[0][2:]  # one step (2 rows) already made in epoch 3
    assert sum(list(resumed.train(4)), []) == sum(list(ranks[0].train(4)), [])  # later epochs whole


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_deepspeed_trainer_from_the_same_builder(process_group, tiny_text_lm, zero_stage):
    """ZeRO-2 takes the chosen/rejected gradient split on parameter copies; ZeRO-3 cannot (parameters
    are partitioned), so the trainer skips it — and the config says what the user asked, unchanged."""
    config = config_for(
        model=str(tiny_text_lm),
        deepspeed=DeepSpeedSettings(zero_stage=zero_stage),
        lora=LoraSettings(rank=4, alpha=8, dropout=0.0),
        optim=OptimSettings(learning_rate=1e-2, effective_batch_size=2, micro_batch_size=2, max_steps=2),
        diagnostics=DiagnosticsSettings(grad_norm_every_steps=1),
    )
    policy = load_policy(config, tiny_text_lm)
    history = []
    trainer = build_trainer(config, policy, InMemoryBatches(examples(4), PairCollator(policy.processor, 32), config), hooks=LoopHooks(log=lambda row, step: history.append(row)))
    assert type(trainer.backend).__name__ == "DeepSpeedBackend" and trainer.model is trainer.backend.engine
    engine = trainer.backend.engine  # the deepspeed section as DeepSpeed took it (its defaults: no overlap at stage 2, 5e8, bf16)
    assert engine.zero_overlap_comm() and engine.zero_reduce_bucket_size() == 50_000_000 and engine.zero_contiguous_gradients()
    from deepspeed.runtime.config import DeepSpeedConfig

    from synpo.training.deepspeed_backend import deepspeed_config

    assert DeepSpeedConfig(deepspeed_config(config, 1, use_bf16=True)).communication_data_type == torch.float32
    no_fp32 = config.model_copy(update={"deepspeed": DeepSpeedSettings(zero_stage=zero_stage, fp32_communication=False)})
    assert DeepSpeedConfig(deepspeed_config(no_fp32, 1, use_bf16=True)).communication_data_type == torch.bfloat16
    trainer.fit()
    assert len(history) == 2 and config.diagnostics.grad_norm_every_steps == 1
    has_split = ["grad_norm/chosen" in row for row in history]
    assert has_split == ([True, True] if zero_stage == 2 else [False, False])
    if zero_stage == 2:
        assert all(row["grad_norm/chosen"] > 0 and row["grad_norm/rejected"] > 0 for row in history)


def test_skipping_non_finite_batches_is_refused_under_zero3():
    config_for(optim=OptimSettings(skip_nonfinite_batches=2), deepspeed=DeepSpeedSettings(zero_stage=2))
    with pytest.raises(pydantic.ValidationError, match="skip_nonfinite_batches needs ZeRO stage 0-2"):
        config_for(optim=OptimSettings(skip_nonfinite_batches=2), deepspeed=DeepSpeedSettings(zero_stage=3))
