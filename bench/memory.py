"""Training memory of a real-shaped 7B layer on CPU, and the per-GPU estimate the training job prints.

    .venv/bin/python bench/memory.py [--tokens 512] [--layers 2]

Part 1 — bytes one decoder layer keeps for backward per token, Qwen2-VL-7B's language model shape
(hidden 3584, MLP 18944, 28 heads / 4 KV heads), bf16, LoRA r128 on the 7 projections, dropout 0.05:
    meta      synpo.training.memory.saved_bytes_per_token: the layer on the meta device (what the job uses)
    saved     real CPU layers (random weights), the tensors autograd saves, counted by storage
    saved, checkpointed   the same with activation checkpointing (torch.utils.checkpoint, non-reentrant)
    rss       real CPU layers, the process's resident memory after forward minus before (no checkpointing)
Prints each per token per layer and the ratios (meta / saved, without / with checkpointing).

Part 2 — synpo.training.memory.estimate for jobs/configs/train.yaml on that model shape (8 workers,
ZeRO-2, micro-batch 2) at the sequence lengths of its 16 frames at 448 px and longer ones, per GPU.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
from pathlib import Path

import psutil
import torch
from peft import LoraConfig, get_peft_model
from torch.utils.checkpoint import checkpoint
from transformers import Qwen2VLConfig
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLDecoderLayer

from synpo.config.loader import load_config
from synpo.training.config import LANGUAGE_PROJECTIONS, TrainConfig
from synpo.training.memory import GIB, estimate, first_decoder_layer, meta_model, saved_tensors

REPO = Path(__file__).resolve().parents[1]
TEXT = {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
        "vocab_size": 152064, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}}  # fmt: skip
VISION = {"depth": 32, "embed_dim": 1280, "hidden_size": 3584, "num_heads": 16}


class Layers(torch.nn.Module):
    def __init__(self, config, count: int, recompute: bool) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(Qwen2VLDecoderLayer(config, index) for index in range(count))
        self.recompute = recompute

    def forward(self, hidden, rotary):
        for layer in self.layers:
            if self.recompute:
                hidden = checkpoint(layer, hidden, position_embeddings=(rotary, rotary), use_reentrant=False)
            else:
                hidden = layer(hidden, attention_mask=None, position_embeddings=(rotary, rotary))
        return hidden


def real_layers(text_config, count: int, recompute: bool) -> torch.nn.Module:
    module = Layers(text_config, count, recompute).to(torch.bfloat16)
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    lora = LoraConfig(r=128, lora_alpha=64, lora_dropout=0.05, target_modules=LANGUAGE_PROJECTIONS)
    return get_peft_model(module, lora).to(torch.bfloat16)


def inputs(text_config, tokens: int):
    hidden = torch.randn(1, tokens, text_config.hidden_size, dtype=torch.bfloat16, requires_grad=True)
    rotary = torch.randn(1, tokens, text_config.hidden_size // text_config.num_attention_heads, dtype=torch.bfloat16)
    return hidden, rotary


def saved_by_autograd(text_config, tokens: int, count: int, recompute: bool = False) -> float:
    model = real_layers(text_config, count, recompute)
    hidden, rotary = inputs(text_config, tokens)
    with saved_tensors(exclude=model.parameters()) as saved:
        model(hidden, rotary)
    return sum(saved.values()) / tokens / count


def resident_growth(text_config, tokens: int, count: int) -> float:
    model = real_layers(text_config, count, recompute=False)
    hidden, rotary = inputs(text_config, tokens)
    with torch.no_grad():
        model(hidden, rotary)  # allocator warm-up: the transient buffers of one layer exist once already
    gc.collect()
    before = psutil.Process().memory_info().rss
    output = model(hidden, rotary)
    grown = psutil.Process().memory_info().rss - before
    del output
    return grown / tokens / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = load_config(TrainConfig, REPO / "jobs/configs/train.yaml", ["pairs=unused"])
    with tempfile.TemporaryDirectory() as folder:
        Qwen2VLConfig(text_config=TEXT, vision_config=VISION).save_pretrained(folder)
        model = meta_model(folder, config)
    text_config = first_decoder_layer(model).self_attn.config
    text_config._attn_implementation = "sdpa"
    meta = estimate(model, config, args.tokens).activation_bytes_per_token_layer
    saved = saved_by_autograd(text_config, args.tokens, args.layers)
    saved_recomputed = saved_by_autograd(text_config, args.tokens, args.layers, recompute=True)
    plain = resident_growth(text_config, args.tokens, args.layers)
    print(f"Part 1: Qwen2-VL-7B decoder layer, bf16, LoRA r128, {args.tokens} tokens, {args.layers} layers (MB per token per layer)")
    print(f"  meta (the job's figure)     {meta / 1e6:.4f}")
    print(f"  saved by autograd (real)    {saved / 1e6:.4f}    meta / saved = {meta / saved:.2f}")
    print(f"  saved, checkpointed (real)  {saved_recomputed / 1e6:.4f}    saved / checkpointed = {saved / max(saved_recomputed, 1.0):.0f}x")
    print(f"  resident growth (real)      {plain / 1e6:.4f}    the process's view: saved tensors plus the allocator's slack")
    print("Part 2: jobs/configs/train.yaml (8 workers, ZeRO-2, micro-batch 2, LoRA r128) per GPU, GiB")
    video_tokens = config.video.num_frames // 2 * (config.video.max_side // 28) ** 2  # Qwen2-VL: 2 frames x 28x28 px per token
    for tokens in (video_tokens + 64 + config.max_response_tokens, 6400, 11600):
        for recompute in (True, False):
            memory = estimate(model, config.model_copy(update={"activation_checkpointing": recompute}), tokens)
            print(f"  {tokens:>6} tokens  checkpointing {'on ' if recompute else 'off'}  total {memory.total / GIB:7.1f}  "
                  f"(weights {memory.weights / GIB:.1f}, optimizer {memory.optimizer / GIB:.1f}, activations {memory.activations / GIB:.1f}, "
                  f"logits {memory.logits / GIB:.1f})  fits 80 GiB: {memory.fits(80 * GIB)}")  # fmt: skip


if __name__ == "__main__":
    main()
