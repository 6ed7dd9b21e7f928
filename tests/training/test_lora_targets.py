"""LoRA lands on the language model only, for every VLM family, and the vision side stays frozen.

Tiny random models of each family, built from configs (no weights to download): Qwen2.5-VL's vision
MLPs share the names gate_proj/up_proj/down_proj with the language model's, and LLaVA-OneVision's
SigLIP attention shares q_proj/k_proj/v_proj. The default targets must wrap none of them.
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
)

from synpo.training.config import LANGUAGE_PROJECTIONS, LoraSettings
from synpo.training.logprobs import vision_is_frozen
from synpo.training.model import add_lora, is_vision_name

TEXT = {"vocab_size": 64, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 1, "num_key_value_heads": 1}
MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 12, 12]}


def qwen2_vl():
    vision = {"depth": 1, "embed_dim": 32, "hidden_size": 64, "num_heads": 1, "mlp_ratio": 2}
    return Qwen2VLForConditionalGeneration(Qwen2VLConfig(text_config={**TEXT, "rope_parameters": MROPE}, vision_config=vision))


def qwen2_5_vl():
    vision = {"depth": 1, "hidden_size": 32, "out_hidden_size": 64, "intermediate_size": 48, "num_heads": 1}
    return Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config={**TEXT, "rope_parameters": MROPE}, vision_config=vision))


def llava_onevision():
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 1, "num_attention_heads": 1, "image_size": 28, "patch_size": 14}
    return LlavaOnevisionForConditionalGeneration(LlavaOnevisionConfig(text_config={"model_type": "qwen2", **TEXT}, vision_config=vision))


FAMILIES = {"qwen2-vl": qwen2_vl, "qwen2.5-vl": qwen2_5_vl, "llava-onevision": llava_onevision}
# What each family's vision side holds that the default targets would match by name: the bug this guards against.
VISION_NAME_CLASHES = {"qwen2-vl": set(), "qwen2.5-vl": {"gate_proj", "up_proj", "down_proj"}, "llava-onevision": {"q_proj", "k_proj", "v_proj"}}


def linear_names(model: torch.nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]


@pytest.mark.parametrize("family", FAMILIES)
def test_adapters_wrap_every_language_projection_and_nothing_on_the_vision_side(family):
    torch.manual_seed(0)
    model = FAMILIES[family]()
    clashes = {name.rsplit(".", 1)[-1] for name in linear_names(model) if is_vision_name(name)} & set(LANGUAGE_PROJECTIONS)
    assert clashes == VISION_NAME_CLASHES[family]  # the family really has the trap
    expected = {name for name in linear_names(model) if name.startswith("model.language_model.") and name.rsplit(".", 1)[-1] in LANGUAGE_PROJECTIONS}
    assert len(expected) == 2 * len(LANGUAGE_PROJECTIONS)  # 2 layers x 7 projections

    peft_model = add_lora(model, LoraSettings(rank=4, alpha=8, dropout=0.0))

    wrapped = {name.removeprefix("base_model.model.").removesuffix(".lora_A") for name, _ in peft_model.named_modules() if name.endswith(".lora_A")}
    assert wrapped == expected
    trainable = [name for name, parameter in peft_model.named_parameters() if parameter.requires_grad]
    assert trainable and all("lora_" in name and not is_vision_name(name) for name in trainable)
    assert vision_is_frozen(peft_model)


@pytest.mark.parametrize("family", FAMILIES)
def test_train_vision_tower_unfreezes_the_whole_vision_side(family):
    model = add_lora(FAMILIES[family](), LoraSettings(rank=4, alpha=8, dropout=0.0, train_vision_tower=True))
    vision = [(name, parameter) for name, parameter in model.named_parameters() if is_vision_name(name)]
    assert vision and all(parameter.requires_grad for _, parameter in vision)
    assert not vision_is_frozen(model)
    assert not any(parameter.requires_grad for name, parameter in model.named_parameters() if "language_model" in name and "lora_" not in name)


@pytest.mark.parametrize("family", FAMILIES)
def test_full_fine_tuning_trains_the_language_model_and_freezes_the_vision_side(family):
    model = add_lora(FAMILIES[family](), LoraSettings(enabled=False))
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad == (not is_vision_name(name)), name
    assert any(name.startswith("model.language_model.") for name, p in model.named_parameters() if p.requires_grad)


def test_a_text_model_has_no_vision_side():
    """Qwen2ForCausalLM's parameters are also under ``model.``: none of them may be taken for vision."""
    model = add_lora(Qwen2ForCausalLM(Qwen2Config(**TEXT)), LoraSettings(rank=4, alpha=8, dropout=0.0))
    assert sum(name.endswith(".lora_A") for name, _ in model.named_modules()) == 2 * len(LANGUAGE_PROJECTIONS)
    full = add_lora(Qwen2ForCausalLM(Qwen2Config(**TEXT)), LoraSettings(enabled=False))
    assert all(parameter.requires_grad for parameter in full.parameters())
