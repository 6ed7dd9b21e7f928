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
from synpo.vlm.positions import use_reference_positions


def is_video_model(model_dir: str | Path) -> bool:
    return hasattr(AutoConfig.from_pretrained(model_dir), "vision_config")


def training_dtype(device: torch.device) -> torch.dtype:
    """The weights' dtype for training on ``device``: bf16 on GPUs (what DeepSpeed's bf16 mode trains; fp32 master
    copies live in its optimizer), fp32 on CPU workers."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_base(model_dir: str | Path, dtype: torch.dtype = torch.float32, device: torch.device | None = None):
    """``(model, processor)``: ``AutoModelForImageTextToText`` + ``AutoProcessor`` for VLMs,
    ``AutoModelForCausalLM`` + tokenizer for text models. The weights are read in ``dtype`` straight onto
    ``device`` (a 7B model never passes through host memory in fp32: 33 GB per worker)."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ModelNotFound(f"{model_dir!r} is not a model folder (no config.json)")
    placement = {"device_map": {"": device}} if device is not None and device.type != "cpu" else {}
    if is_video_model(path):
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, **placement)
        use_reference_positions(model)  # Qwen2-VL / Qwen2.5-VL: the positions they were trained with (synpo.vlm.positions)
        return model, AutoProcessor.from_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **placement), AutoTokenizer.from_pretrained(path)


# A video VLM (Qwen2-VL family, LLaVA family) is ``XForConditionalGeneration(model=XModel(language_model=...,
# <vision side>), lm_head)``; the vision side is every other part of the inner model: Qwen's ``visual`` (tower
# and merger), LLaVA's ``vision_tower``, ``multi_modal_projector`` and ``image_newline``.
LANGUAGE_MODEL = "model.language_model."
VISION_SIDE = r"model\.(?!language_model\.).*"  # module names peft must never wrap (full match)
PEFT_PREFIX = "base_model.model."


def is_vlm(model: torch.nn.Module) -> bool:
    """Whether ``model`` (or the model under a peft wrapper) has a vision side beside its language model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return hasattr(getattr(base, "model", None), "language_model")


def is_vision_name(name: str) -> bool:
    """Whether a VLM's parameter or module name (peft's ``base_model.model.`` prefix allowed) is on its vision side."""
    name = name.removeprefix(PEFT_PREFIX)
    return name.startswith("model.") and not name.startswith(LANGUAGE_MODEL)


def add_lora(model: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    """Freeze the base, add LoRA to ``settings.target_modules`` of the language model; optionally unfreeze the vision side.

    Adapters go on the language model only, whatever the family: Qwen2.5-VL's vision MLPs are also
    called ``gate_proj``/``up_proj``/``down_proj`` and LLaVA's SigLIP/CLIP attention ``q_proj``/``k_proj``/
    ``v_proj``, and an adapter there would unfreeze the vision tower (and make the "adapters off"
    reference reuse adapted video features). With ``settings.enabled = False`` nothing is wrapped:
    the language model is trained in full (the vision side only if ``train_vision_tower``).
    """
    vlm = is_vlm(model)
    if not settings.enabled:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(settings.train_vision_tower or not (vlm and is_vision_name(name)))
        return model
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        exclude_modules=VISION_SIDE if vlm else None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    if settings.train_vision_tower and vlm:
        for name, parameter in peft_model.named_parameters():
            if is_vision_name(name):
                parameter.requires_grad_(True)
    return peft_model


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each decoder layer's activations in backward instead of keeping them (transformers' gradient
    checkpointing, non-reentrant: the reentrant form needs inputs that require grad, which frozen embeddings
    and no-grad video features are not). Call after :func:`add_lora`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    base.config.use_cache = False


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
