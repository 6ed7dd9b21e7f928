"""The tiny (warm-started) VLM trained for a few dozen steps on known-answer toy pairs, per objective."""

import math
from dataclasses import replace

import pytest
import torch

from synpo.losses import OBJECTIVES, get_objective
from synpo.losses.common import mean_logp, sequence_logp
from synpo.storage import Storage
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
from synpo.training.logprobs import reference_sequence_logps, response_logps
from synpo.training.model import add_lora, load_base
from synpo.training.recipe import build_trainer, load_policy
from synpo.training.step import NonFiniteLossError, compute_step
from synpo.training.trainer import LoopHooks
from synpo.video.sampler import VideoSamplingConfig

VIDEO = VideoSamplingConfig(num_frames=8, max_side=160)
STEPS = 24


@pytest.fixture(scope="module")
def examples(toy_pair_rows):
    dataset = PairDataset(toy_pair_rows, VIDEO, Storage())
    return [dataset[index] for index in range(len(dataset))]


def preference_margins(model, collate, examples) -> tuple[torch.Tensor, torch.Tensor]:
    """Per training pair ``[N]``, eval mode, no grad: ``log pi(y_w) - log pi(y_l)`` (summed) and ``M(y_w) - M(y_l)`` (mean log p)."""
    model.eval()
    with torch.no_grad():
        logps = response_logps(model, collate(examples))
    model.train()
    summed = sequence_logp(logps.chosen_logps, logps.chosen_mask) - sequence_logp(logps.rejected_logps, logps.rejected_mask)
    mean = mean_logp(logps.chosen_logps, logps.chosen_mask) - mean_logp(logps.rejected_logps, logps.rejected_mask)
    return summed, mean


def train(model_dir, examples, objective, steps=STEPS, **hyperparameters):
    config = TrainConfig(
        pairs="in-memory",
        model=str(model_dir),
        objective=objective,
        scaling=ScalingSettings(num_workers=1),
        deepspeed=DeepSpeedSettings(enabled=False),
        hyperparameters=hyperparameters,
        lora=LoraSettings(rank=8, alpha=16, dropout=0.0),
        optim=OptimSettings(learning_rate=2e-3, warmup_ratio=0.0, effective_batch_size=4, micro_batch_size=4, epochs=1000, max_steps=steps),
        diagnostics=DiagnosticsSettings(grad_norm_every_steps=8),
        video=VIDEO,
    )
    policy = load_policy(config, model_dir)
    before = {name: tensor.clone() for name, tensor in policy.model.state_dict().items() if "lora_" not in name}
    collate = PairCollator(policy.processor, 160)
    history = []
    trainer = build_trainer(config, policy, InMemoryBatches(examples, collate, config), hooks=LoopHooks(log=lambda metrics, step: history.append(metrics)))
    margins_before = preference_margins(policy.model, collate, examples)  # LoRA B starts at zero: the warm model itself
    trainer.fit()
    return policy.model, before, history, (margins_before, preference_margins(policy.model, collate, examples))


def window_mean(history, key, first: bool):
    rows = history[:5] if first else history[-5:]
    return sum(row[key] for row in rows) / len(rows)


@pytest.mark.slow
@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_each_objective_lowers_its_loss_prefers_chosen_more_and_only_lora_changes(warm_vlm, examples, objective):
    """A falling loss alone passes on a sign-flipped objective (it then falls by pushing chosen down); so
    on the 8 training pairs the chosen response must also gain on the rejected one: the summed and the
    length-normalised log-prob margins grow, as does the objective's own reward margin (the diagnostic
    that picks the best epoch), and preference accuracy does not fall."""
    model, before, history, ((summed_before, mean_before), (summed_after, mean_after)) = train(warm_vlm, examples, objective)
    assert len(history) == STEPS and all(math.isfinite(row["loss"]) for row in history)
    assert window_mean(history, "loss", first=False) < window_mean(history, "loss", first=True), objective
    assert summed_after.mean() > summed_before.mean(), ("log pi(y_w) - log pi(y_l) fell", objective, summed_before, summed_after)
    assert mean_after.mean() > mean_before.mean(), ("M(y_w) - M(y_l) fell", objective, mean_before, mean_after)
    assert (summed_after > 0).float().mean() >= (summed_before > 0).float().mean(), ("accuracy fell", objective, summed_before, summed_after)
    assert window_mean(history, "rewards/margin", first=False) > window_mean(history, "rewards/margin", first=True), ("reward margin fell", objective)
    changed = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert changed and all("lora_" in name for name in changed)
    after = {name: tensor for name, tensor in model.state_dict().items() if "lora_" not in name}
    assert after.keys() == before.keys()
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), f"{objective} changed frozen weight {name}"
    split = [row for row in history if "grad_norm/chosen" in row]
    assert len(split) == STEPS // 8 and all(row["grad_norm/chosen"] > 0 for row in split)
    if objective != "sft":  # SFT's loss never sees the rejected response
        assert all(row["grad_norm/rejected"] > 0 for row in split), objective


def test_reference_is_the_model_with_adapters_disabled(warm_vlm, examples):
    base, processor = load_base(warm_vlm)
    batch = PairCollator(processor, 160)(examples[:2])
    with torch.no_grad():
        plain = response_logps(base.eval(), batch)
    model = add_lora(base, LoraSettings(rank=4, alpha=8, dropout=0.0)).eval()
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)  # make the adapters matter
    ref_chosen, ref_rejected = reference_sequence_logps(model, batch)
    assert torch.allclose(ref_chosen, (plain.chosen_logps * plain.chosen_mask).sum(-1), atol=1e-4)
    with torch.no_grad():
        adapted = response_logps(model, batch)
    assert not torch.allclose((adapted.chosen_logps * adapted.chosen_mask).sum(-1), ref_chosen, atol=1e-3)


def test_a_non_finite_loss_stops_naming_the_step_and_pairs_or_is_skipped_when_allowed(warm_vlm, examples):
    """One worker (plain PyTorch): a NaN reference log-prob makes the loss NaN. With no skips allowed the loop
    stops naming the step and the pair; with one allowed it trains on without that micro-batch's gradient."""
    poisoned = [replace(example, ref_chosen_logp=-30.0, ref_rejected_logp=-30.0) for example in examples[:4]]
    poisoned[2] = replace(poisoned[2], ref_chosen_logp=float("nan"))
    for skips in (0, 1):
        config = TrainConfig(
            pairs="in-memory", objective="dpo", reference="precomputed", lora=LoraSettings(rank=4, alpha=8, dropout=0.0),
            optim=OptimSettings(effective_batch_size=1, micro_batch_size=1, epochs=1, skip_nonfinite_batches=skips),
            diagnostics=DiagnosticsSettings(grad_norm_every_steps=0), scaling=ScalingSettings(num_workers=1), deepspeed=DeepSpeedSettings(enabled=False),
        )  # fmt: skip
        policy = load_policy(config, warm_vlm)
        rows: list[dict] = []
        trainer = build_trainer(config, policy, InMemoryBatches(poisoned, PairCollator(policy.processor, 160), config), hooks=LoopHooks(log=lambda row, step, rows=rows: rows.append(row)))
        if skips == 0:
            with pytest.raises(NonFiniteLossError) as stopped:
                trainer.fit()
            assert f"at optimizer step {len(rows) + 1} (epoch 0): worker 0: loss nan from pairs ['{poisoned[2].pair_id}']" in str(stopped.value)
            continue
        result = trainer.fit()
        assert result.steps == 4 and result.skipped_batches == 1
        assert sum("loss" not in row for row in rows) == 1  # the skipped step logged no loss means, and no NaN
        assert all(math.isfinite(value) for row in rows for value in row.values())
        assert all(torch.isfinite(parameter).all() for parameter in policy.model.parameters())


def test_precomputed_reference_is_required_when_asked(warm_vlm, examples):
    base, processor = load_base(warm_vlm)
    model = add_lora(base, LoraSettings(rank=4, alpha=8))
    batch = PairCollator(processor, 160)(examples[:2])
    with pytest.raises(ValueError, match="needs ref_chosen_logp"):
        compute_step(model, batch, get_objective("dpo").configure({}), reference="precomputed")


def test_precomputed_reference_matches_adapters_off(warm_vlm, toy_pair_rows, examples):
    from synpo.training.reference import add_reference_logps

    enriched = add_reference_logps(toy_pair_rows[:2], str(warm_vlm), VIDEO, max_response_tokens=160, batch_size=2, device="cpu")
    assert all(row["ref_chosen_logp"] < 0 and row["ref_rejected_logp"] < 0 for row in enriched)
    base, processor = load_base(warm_vlm)
    model = add_lora(base, LoraSettings(rank=4, alpha=8, dropout=0.0))
    precomputed = PairDataset(enriched, VIDEO, Storage())
    batch = PairCollator(processor, 160)([precomputed[0], precomputed[1]])
    with torch.no_grad():
        stored = compute_step(model, batch, get_objective("dpo").configure({}), reference="precomputed")
        live = compute_step(model, batch, get_objective("dpo").configure({}), reference="adapters_off")
    assert torch.allclose(stored.output.losses, live.output.losses, atol=1e-4)
