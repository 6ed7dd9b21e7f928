"""Load the base model and processor from a local folder and wrap the language model with LoRA."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)

from synpo.errors import ModelNotFound
from synpo.training.config import LoraSettings


def is_video_model(model_dir: str | Path) -> bool:
    return hasattr(AutoConfig.from_pretrained(model_dir), "vision_config")


def load_base(model_dir: str | Path, dtype: torch.dtype = torch.float32):
    """``(model, processor)``: ``AutoModelForImageTextToText`` + ``AutoProcessor`` for VLMs,
    ``AutoModelForCausalLM`` + tokenizer for text models."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ModelNotFound(f"{model_dir!r} is not a model folder (no config.json)")
    if is_video_model(path):
        return AutoModelForImageTextToText.from_pretrained(path, dtype=dtype), AutoProcessor.from_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype), AutoTokenizer.from_pretrained(path)


def add_lora(model: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    """Freeze the base, add LoRA to ``settings.target_modules``; optionally unfreeze the vision tower.

    With ``settings.enabled = False`` nothing is wrapped: the language model is trained in full
    (the vision tower only if ``train_vision_tower``).
    """
    if not settings.enabled:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(settings.train_vision_tower or ".visual." not in f".{name}")
        return model
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    if settings.train_vision_tower:
        for name, parameter in peft_model.named_parameters():
            if ".visual." in name:
                parameter.requires_grad_(True)
    return peft_model


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
