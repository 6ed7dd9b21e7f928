"""The per-GPU memory estimate the training job prints: its per-token activation figure (one decoder layer on the
meta device) equals what autograd really saves in that layer on CPU; the parts add up as documented; the probe's
sequence bounds the real batches."""

from __future__ import annotations

import pytest
import torch

from synpo.storage import Storage
from synpo.training.collate import PairCollator
from synpo.training.config import DeepSpeedSettings, LoraSettings, OptimSettings, ScalingSettings, TrainConfig
from synpo.training.data import PairDataset
from synpo.training.memory import (
    GIB,
    estimate,
    first_decoder_layer,
    meta_model,
    probe_sequence_tokens,
    saved_bytes_per_token,
    saved_tensors,
    startup_report,
)
from synpo.training.model import add_lora, load_base
from synpo.video.sampler import VideoSamplingConfig

TOKENS = 96


def config_for(**changes) -> TrainConfig:
    base = {"pairs": "unused", "lora": LoraSettings(rank=8, alpha=16, dropout=0.05), "scaling": ScalingSettings(num_workers=2),
            "optim": OptimSettings(effective_batch_size=4, micro_batch_size=2), "video": VideoSamplingConfig(num_frames=8, max_side=160),
            "max_response_tokens": 64}  # fmt: skip
    return TrainConfig(**{**base, **changes})


def really_saved_per_token(layer: torch.nn.Module, tokens: int) -> float:
    """The same count on a real layer: a real bf16 forward on CPU (SDPA)."""
    text_config = layer.self_attn.config
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads
    hidden = torch.randn(1, tokens, text_config.hidden_size, dtype=torch.bfloat16, requires_grad=True)
    rotary = torch.randn(1, tokens, head_dim, dtype=torch.bfloat16)
    with saved_tensors(exclude=layer.parameters()) as saved:
        layer(hidden, attention_mask=None, position_embeddings=(rotary, rotary))
    return sum(saved.values()) / tokens


def test_the_meta_layer_saves_what_the_real_layer_saves(warm_vlm):
    config = config_for()
    model = meta_model(warm_vlm, config)
    base, _ = load_base(warm_vlm)
    real = add_lora(base, config.lora).to(torch.bfloat16).train()
    real_layer = first_decoder_layer(real)
    real_layer.self_attn.config._attn_implementation = "sdpa"
    meta_figure = saved_bytes_per_token(first_decoder_layer(model), TOKENS)
    assert meta_figure == pytest.approx(really_saved_per_token(real_layer, TOKENS), rel=0.02)
    assert meta_figure > 10 * 2 * real.config.get_text_config().hidden_size  # far more than the layer's input alone
    without_lora = saved_bytes_per_token(first_decoder_layer(meta_model(warm_vlm, config_for(lora=LoraSettings(rank=8, dropout=0.0)))), TOKENS)
    assert without_lora < meta_figure  # LoRA dropout keeps its own inputs and masks


def test_the_parts_add_up_as_documented(warm_vlm):
    config = config_for()
    model = meta_model(warm_vlm, config)
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    text = model.config.get_text_config()
    plain = estimate(model, config, sequence_tokens=300)
    per_token = plain.activation_bytes_per_token_layer
    micro_tokens = 2 * 2 * 300  # 2 pairs x (chosen, rejected) x 300 tokens
    assert plain.weights == parameters * 2
    assert plain.optimizer == trainable * 16 / 2 + trainable * 2 / 2 + 8 * trainable  # ZeRO-2 over 2 ranks; bucket > trainable
    assert plain.activations == pytest.approx(text.num_hidden_layers * micro_tokens * per_token)
    recomputed = estimate(model, config.model_copy(update={"activation_checkpointing": True}), sequence_tokens=300)
    assert recomputed.activations == pytest.approx(text.num_hidden_layers * micro_tokens * 2 * text.hidden_size + micro_tokens * per_token)
    zero3 = estimate(model, config.model_copy(update={"deepspeed": DeepSpeedSettings(zero_stage=3)}), sequence_tokens=300)
    zero1 = estimate(model, config.model_copy(update={"deepspeed": DeepSpeedSettings(zero_stage=1)}), sequence_tokens=300)
    assert zero3.weights == plain.weights / 2 and zero3.optimizer == plain.optimizer  # ZeRO-3 splits the weights too
    assert zero1.weights == plain.weights and zero1.optimizer == plain.optimizer + trainable  # ZeRO-1 keeps whole bf16 gradients
    assert plain.total == plain.weights + plain.optimizer + plain.activations + plain.logits
    assert plain.fits(int(plain.total / 0.9) + 1) and not plain.fits(int(plain.total))
    assert "memory estimate per GPU" in plain.report(80 * GIB) and "of 80.0 GiB" in plain.report(80 * GIB)


def test_the_probe_sequence_bounds_the_real_batches(warm_vlm, toy_pair_rows):
    config = config_for(max_response_tokens=64)
    _, processor = load_base(warm_vlm)
    collate = PairCollator(processor, config.max_response_tokens)
    dataset = PairDataset(toy_pair_rows[:6], config.video, Storage())
    longest = max(collate([dataset[index]]).input_ids.shape[1] for index in range(len(dataset)))
    probe = probe_sequence_tokens(collate, config, is_video=True)
    assert longest <= probe <= longest + config.max_response_tokens  # the video and prompt agree; the response is the longest allowed
    assert startup_report(config, warm_vlm, collate, True, torch.device("cpu")).startswith("memory estimate per GPU")
