"""Activation checkpointing after LoRA: the same loss and adapter gradients, the decoder layers run again in
backward instead of keeping their activations, and the video features (no grad) are no obstacle.

And the training dtype: bf16 on GPUs, loaded as such (never an fp32 copy of a 7B model per worker).
"""

from __future__ import annotations

import torch

from synpo.losses import get_objective
from synpo.training.collate import PairCollator
from synpo.training.config import DeepSpeedSettings, LoraSettings, OptimSettings, ScalingSettings, TrainConfig
from synpo.training.model import load_base, training_dtype
from synpo.training.recipe import load_policy
from synpo.training.step import compute_step

CONFIG = {
    "pairs": "in-memory", "scaling": ScalingSettings(num_workers=1), "deepspeed": DeepSpeedSettings(enabled=False),
    "lora": LoraSettings(rank=4, alpha=8, dropout=0.0), "optim": OptimSettings(effective_batch_size=2, micro_batch_size=2),
}  # fmt: skip


def layer_calls(model) -> list[int]:
    """A counter of the first decoder layer's attention calls (inside the layer's forward, which is what is checkpointed)."""
    calls = [0]
    attention = model.get_base_model().model.language_model.layers[0].self_attn
    attention.register_forward_hook(lambda *args: calls.__setitem__(0, calls[0] + 1))
    return calls


def loss_and_grads(tiny_vlm, toy_pair_rows, checkpointing: bool):
    from synpo.storage import Storage
    from synpo.training.data import PairDataset
    from synpo.video.sampler import VideoSamplingConfig

    config = TrainConfig(model=str(tiny_vlm), activation_checkpointing=checkpointing, video=VideoSamplingConfig(num_frames=4, max_side=112), **CONFIG)
    policy = load_policy(config, tiny_vlm)
    dataset = PairDataset(toy_pair_rows[:2], config.video, Storage())
    batch = PairCollator(policy.processor, max_response_tokens=32)([dataset[0], dataset[1]])
    calls = layer_calls(policy.model)
    policy.model.train()
    output = compute_step(policy.model, batch, get_objective("synpo").configure({}))
    forwards = calls[0]
    output.loss.backward()
    grads = {name: parameter.grad.clone() for name, parameter in policy.model.named_parameters() if parameter.requires_grad}
    return output.loss.detach(), grads, forwards, calls[0] - forwards


def test_checkpointing_recomputes_layers_and_leaves_loss_and_adapter_gradients_unchanged(tiny_vlm, toy_pair_rows):
    loss, grads, forwards, recomputed = loss_and_grads(tiny_vlm, toy_pair_rows, checkpointing=False)
    loss_ckpt, grads_ckpt, forwards_ckpt, recomputed_ckpt = loss_and_grads(tiny_vlm, toy_pair_rows, checkpointing=True)
    assert (forwards, recomputed) == (forwards_ckpt, 0) and recomputed_ckpt == forwards_ckpt  # each checkpointed forward runs again
    torch.testing.assert_close(loss_ckpt, loss)
    assert grads.keys() == grads_ckpt.keys() and all("lora_" in name for name in grads)
    assert all(grads[name].abs().sum() > 0 for name in grads if "lora_B" in name)  # the adapters receive gradients (A: none while B = 0)
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], rtol=1e-5, atol=1e-6)


def test_gpu_workers_load_bf16_and_cpu_workers_fp32(tiny_vlm):
    assert training_dtype(torch.device("cuda", 0)) == torch.bfloat16 and training_dtype(torch.device("cpu")) == torch.float32
    model, _ = load_base(tiny_vlm, dtype=torch.bfloat16)
    assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}
    with torch.no_grad():  # and it runs in bf16
        ids = torch.tensor([[1, 2, 3]])
        assert model(input_ids=ids, mm_token_type_ids=torch.zeros_like(ids)).logits.dtype == torch.bfloat16
