"""Qwen2.5-VL trained correctly: adapters on the language model only, and DPO's reference stays the base model.

The tiny Qwen2.5-VL (``synpo toy model --family qwen2.5-vl``) has vision MLPs named like the language
model's (gate_proj/up_proj/down_proj). Before adapters were kept off the vision side, 12 of 40 adapter
tensors sat in ``model.visual``; video features then carried gradients and, after one step, the
"adapters off" reference reused the policy's adapted features, so it was no longer the base model.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from synpo.storage import Storage
from synpo.toy.model import build_tiny_model
from synpo.toy.pairs import toy_pairs
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
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
from synpo.training.logprobs import encode_videos, reference_sequence_logps, response_logps
from synpo.training.model import is_vision_name, load_base
from synpo.training.recipe import build_trainer, load_policy
from synpo.training.trainer import LoopHooks
from synpo.video.sampler import VideoSamplingConfig

VIDEO = VideoSamplingConfig(num_frames=4, max_side=112)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qwen2_5_vl(tmp_path_factory):
    root = tmp_path_factory.mktemp("qwen2_5_vl")
    model = build_tiny_model(root / "model", family="qwen2.5-vl", seed=3)
    write_toy_videos(str(root / "videos"), 4, seed=5, spec=ToyVideoSpec(max_duration_s=6), progress=False)
    dataset = PairDataset(toy_pairs(str(root / "videos"), seed=1), VIDEO, Storage())
    return model, [dataset[index] for index in range(len(dataset))]


def summed(logps, mask) -> torch.Tensor:
    return torch.where(mask, logps, 0.0).sum(-1)


def test_dpo_step_trains_language_adapters_only_and_the_reference_stays_the_base(qwen2_5_vl, tmp_path):
    model_dir, examples = qwen2_5_vl
    config = TrainConfig(
        pairs="in-memory", model=str(model_dir), objective="dpo", seed=0,
        scaling=ScalingSettings(num_workers=1), deepspeed=DeepSpeedSettings(enabled=False),
        lora=LoraSettings(rank=4, alpha=8, dropout=0.0),
        optim=OptimSettings(learning_rate=5e-2, warmup_ratio=0.0, effective_batch_size=4, micro_batch_size=4, epochs=2, max_steps=2),
        diagnostics=DiagnosticsSettings(grad_norm_every_steps=0), video=VIDEO, max_response_tokens=48,
    )  # fmt: skip
    policy = load_policy(config, model_dir)
    collate = PairCollator(policy.processor, max_response_tokens=48)
    batch = collate(examples)
    history = []
    build_trainer(config, policy, InMemoryBatches(examples, collate, config), hooks=LoopHooks(log=lambda row, step: history.append(row))).fit()
    assert len(history) == 2

    policy.model.save_pretrained(tmp_path / "adapter")
    tensors = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert tensors and not [name for name in tensors if is_vision_name(name)]
    assert any(tensor.abs().sum() > 0 for name, tensor in tensors.items() if "lora_B" in name)  # the step moved the adapters

    policy.model.eval()
    with torch.no_grad():
        features = encode_videos(policy.model, batch)  # what the trainer hands the reference pass
        reference = reference_sequence_logps(policy.model, batch, video_features=features)
        adapted = response_logps(policy.model, batch, video_features=features)
        base_model, _ = load_base(model_dir)
        base = response_logps(base_model.eval(), batch)
    torch.testing.assert_close(reference[0], summed(base.chosen_logps, base.chosen_mask), rtol=0.0, atol=2e-3)
    torch.testing.assert_close(reference[1], summed(base.rejected_logps, base.rejected_mask), rtol=0.0, atol=2e-3)
    assert not torch.allclose(summed(adapted.chosen_logps, adapted.chosen_mask), reference[0], atol=1e-3)  # the policy did move
