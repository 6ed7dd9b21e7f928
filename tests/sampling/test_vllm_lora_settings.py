"""The vLLM engine's LoRA settings follow the adapter: read before any model loads, refused when vLLM cannot serve it.

vLLM's default ``max_lora_rank`` is 16: a rank-128 adapter (the GPU configs' rank) used to be rejected at
the first generate, after every engine actor had loaded the model. These run without vLLM (pure settings).
"""

from __future__ import annotations

import json

import pytest

from synpo.errors import BadArgument, ModelNotFound
from synpo.sampling.vllm_engine import VLLMSettings, adapter_rank, lora_request, settings_for_adapter


def adapter(tmp_path, rank: int):
    folder = tmp_path / f"adapter-r{rank}"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 64, "peft_type": "LORA"}))
    return folder


@pytest.mark.parametrize(("rank", "served"), [(8, 16), (16, 16), (100, 128), (128, 128), (320, 320), (512, 512)])
def test_the_engine_serves_the_adapters_rank(tmp_path, rank, served):
    settings = settings_for_adapter(VLLMSettings(), adapter(tmp_path, rank))
    assert settings.enable_lora and settings.max_lora_rank == served
    assert settings_for_adapter(VLLMSettings(max_lora_rank=256), tmp_path / f"adapter-r{rank}").max_lora_rank == max(256, served)  # never lowered


def test_no_adapter_changes_nothing_and_a_bad_one_is_named(tmp_path):
    settings = VLLMSettings(dtype="float32")
    assert settings_for_adapter(settings, None) is settings
    with pytest.raises(BadArgument, match=r"LoRA rank 1024; vLLM serves ranks up to 512"):
        settings_for_adapter(settings, adapter(tmp_path, 1024))
    with pytest.raises(ModelNotFound, match="no adapter_config.json"):
        adapter_rank(tmp_path)


def test_an_adapter_loaded_later_is_checked_against_the_running_engine(tmp_path):
    """Serving variants and use_adapter() add adapters after start-up: refused with the setting named, before vLLM sees them."""
    running = VLLMSettings(enable_lora=True, max_lora_rank=16)
    with pytest.raises(BadArgument, match=r"LoRA rank 128 but the engine serves ranks up to vllm.max_lora_rank=16"):
        lora_request(adapter(tmp_path, 128), {}, running)
    with pytest.raises(BadArgument, match=r"needs vllm.enable_lora=true .*its rank, 8"):
        lora_request(adapter(tmp_path, 8), {}, VLLMSettings())
