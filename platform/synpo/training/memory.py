"""How much GPU memory a training worker needs, estimated before it loads a weight.

    weights      every parameter in bf16 (ZeRO-3: split over the ranks)
    optimizer    the trainable parameters' fp32 master copy, AdamW's two moments and the fp32 gradient
                 partition (ZeRO 1-3: split over the ranks), their bf16 gradients (ZeRO 2-3: split),
                 and DeepSpeed's two float32 reduction buckets
    activations  what one micro-batch's forward keeps for backward (2 x micro_batch_size sequences):
                 per token and decoder layer *measured*, not modelled: one decoder layer of the model's own
                 class at its real shape, LoRA as configured, run on the meta device (no memory, no compute)
                 while counting the tensors autograd saves (parameters excluded; attention as
                 flash-attention keeps it: q, k, v, output, log-sum-exp). With activation checkpointing:
                 each layer's input, plus one layer's activations while it is recomputed.
    logits       the response positions' bf16 logits and one float32 chunk (synpo.training.logprobs)

``bench/memory.py`` checks the per-token figure against real CPU layers and prints the estimate for a config;
``worker.py`` prints it at start-up, with a warning when it exceeds the GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AttentionInterface, AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

from synpo.sampling.prompts import CAPTION_PROMPT
from synpo.training.collate import PairCollator, PairExample
from synpo.training.config import TrainConfig
from synpo.training.model import add_lora, is_vision_name
from synpo.video.metadata import frame_metadata

GIB = 1024**3
FLASH_ACCOUNTING = "synpo_flash_accounting"
LOGIT_CHUNK_ROWS = 1024  # synpo.training.logprobs.token_logps' default
LONG_VIDEO_S = 3600.0  # the probe video's duration
HEADROOM = 0.9  # the share of a GPU's memory the estimate may use: CUDA context, allocator fragmentation


class _FlashSaved(torch.autograd.Function):
    """Attention as flash-attention keeps it for backward (q, k, v, output, log-sum-exp); no [T, T] scores."""

    @staticmethod
    def forward(ctx, query, key, value):
        output = torch.empty_like(query)
        log_sum_exp = query.new_empty(query.shape[:-1], dtype=torch.float32)  # [B, H, T]
        ctx.save_for_backward(query, key, value, output, log_sum_exp)
        return output

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("the memory probe never runs backward")


def _flash_accounting(module, query, key, value, attention_mask, **kwargs):
    return _FlashSaved.apply(query, key, value).transpose(1, 2), None  # [B, T, H, D]


AttentionInterface.register(FLASH_ACCOUNTING, _flash_accounting)


def meta_model(model_dir: str | Path, config: TrainConfig) -> torch.nn.Module:
    """The model of ``model_dir`` with ``config.lora`` added, in bf16, on the meta device (shapes only)."""
    model_config = AutoConfig.from_pretrained(model_dir)
    model_class = AutoModelForImageTextToText if hasattr(model_config, "vision_config") else AutoModelForCausalLM
    with torch.device("meta"):
        model = model_class.from_config(model_config).to(torch.bfloat16)
    return add_lora(model, config.lora).to(torch.bfloat16)


def first_decoder_layer(model: torch.nn.Module) -> torch.nn.Module:
    for name, module in model.named_modules():
        if type(module).__name__.endswith("DecoderLayer") and not is_vision_name(name):
            return module
    raise ValueError(f"no decoder layer found in {type(model).__name__}")


@contextmanager
def saved_tensors(exclude: Iterable[torch.Tensor] = ()) -> Iterator[dict[int, int]]:
    """Inside the block, the bytes of each distinct storage autograd saves for backward (``exclude``: storages not to
    count, e.g. the parameters, resident anyway), by storage; on real tensors and on the meta device alike."""
    skipped = {tensor.untyped_storage()._cdata for tensor in exclude}
    saved: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in skipped:
            saved[storage._cdata] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        yield saved


def saved_bytes_per_token(layer: torch.nn.Module, tokens: int = 1024) -> float:
    """Bytes one decoder layer keeps for backward per token (its parameters excluded), on the meta device."""
    text_config = layer.self_attn.config
    implementation, text_config._attn_implementation = text_config._attn_implementation, FLASH_ACCOUNTING
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads
    hidden = torch.empty(1, tokens, text_config.hidden_size, device="meta", dtype=torch.bfloat16, requires_grad=True)
    rotary = torch.empty(1, tokens, head_dim, device="meta", dtype=torch.bfloat16)
    try:
        with saved_tensors(exclude=layer.parameters()) as saved:
            layer(hidden, attention_mask=None, position_embeddings=(rotary, rotary))
    finally:
        text_config._attn_implementation = implementation
    return sum(saved.values()) / tokens


def _size(size: float) -> str:
    return f"{size / GIB:.1f} GiB" if size >= GIB / 10 else f"{size / 1024**2:.1f} MiB"


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per GPU, by part (see the module docstring)."""

    parameters: int
    trainable: int
    layers: int
    sequence_tokens: int
    activation_bytes_per_token_layer: float
    weights: float
    optimizer: float
    activations: float
    logits: float

    @property
    def total(self) -> float:
        return self.weights + self.optimizer + self.activations + self.logits

    def fits(self, gpu_bytes: int) -> bool:
        return self.total <= HEADROOM * gpu_bytes

    def report(self, gpu_bytes: int | None = None) -> str:
        parts = ", ".join(f"{name} {_size(value)}" for name, value in
                          (("weights", self.weights), ("optimizer", self.optimizer), ("activations", self.activations), ("logits", self.logits)))  # fmt: skip
        line = (f"memory estimate per GPU: {_size(self.total)} ({parts}; {self.parameters / 1e9:.2f}B parameters, "
                f"{self.trainable / 1e6:.1f}M trainable, sequences up to {self.sequence_tokens} tokens, "
                f"{self.activation_bytes_per_token_layer / 1e6:.3f} MB saved per token per layer)")  # fmt: skip
        if gpu_bytes:
            line += f" of {_size(gpu_bytes)}"
        return line


def estimate(model: torch.nn.Module, config: TrainConfig, sequence_tokens: int) -> MemoryEstimate:
    """Per-GPU bytes for training ``model`` (from :func:`meta_model`) under ``config`` on sequences of ``sequence_tokens``."""
    world, stage = config.scaling.num_workers, config.deepspeed.zero_stage if config.deepspeed.enabled else 0
    parameters = sum(parameter.numel() for parameter in model.parameters())
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    layer = first_decoder_layer(model)
    text_config = layer.self_attn.config
    per_token_layer = saved_bytes_per_token(layer)
    layers = text_config.num_hidden_layers
    micro_tokens = 2 * config.optim.micro_batch_size * sequence_tokens  # chosen and rejected of each pair, padded alike
    if config.activation_checkpointing:
        activations = layers * micro_tokens * 2 * text_config.hidden_size + micro_tokens * per_token_layer
    else:
        activations = layers * micro_tokens * per_token_layer
    response_positions = 2 * config.optim.micro_batch_size * config.max_response_tokens
    logits = text_config.vocab_size * (2 * response_positions + 4 * 2 * min(LOGIT_CHUNK_ROWS, response_positions))
    split_states, split_grads = (world if stage >= 1 else 1), (world if stage >= 2 else 1)
    buckets = 2 * 4 * min(config.deepspeed.reduce_bucket_size, trainable) if config.deepspeed.enabled else 0
    optimizer = trainable * 16 / split_states + trainable * 2 / split_grads + buckets
    weights = parameters * 2 / (world if stage == 3 else 1)
    return MemoryEstimate(parameters, trainable, layers, sequence_tokens, per_token_layer, weights, optimizer, activations, logits)


def probe_sequence_tokens(collate: PairCollator, config: TrainConfig, is_video: bool) -> int:
    """The longest sequence a micro-batch can hold: the caption prompt with a square video of ``config.video``
    (the most frames' tokens ``max_side`` allows) lasting an hour (the longest frame-time texts) and a response of
    ``max_response_tokens``, as the collator builds it."""
    side, frames = config.video.max_side, config.video.num_frames
    video = np.zeros((frames, side, side, 3), dtype=np.uint8) if is_video else None
    response = " ".join(["word"] * config.max_response_tokens)
    metadata = frame_metadata(frames, LONG_VIDEO_S) if is_video else None  # long: Qwen3-VL's timestamp texts at their longest
    example = PairExample("memory-probe", CAPTION_PROMPT, response, response, frames=video, video_metadata=metadata)
    return int(collate([example]).input_ids.shape[1])


def startup_report(config: TrainConfig, model_dir: str | Path, collate: PairCollator, is_video: bool, device: torch.device) -> str:
    """The line a training job prints before training: the estimate, and a warning when it exceeds ``device``'s memory."""
    memory = estimate(meta_model(model_dir, config), config, probe_sequence_tokens(collate, config, is_video))
    gpu = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None
    line = memory.report(gpu)
    if gpu is not None and not memory.fits(gpu):
        line = (f"warning: {line}: this will not fit ({HEADROOM:.0%} of the GPU is the limit); turn activation_checkpointing on, "
                "or lower optim.micro_batch_size, video.num_frames, video.max_side or max_response_tokens, or use deepspeed.zero_stage=3")  # fmt: skip
    return line
