"""tests/vllm_cpu run in the vLLM CPU venv only: `.venv-vllm/bin/python -m pytest tests/vllm_cpu`.

They need two folders built beforehand in the MAIN venv (the vLLM venv has another torch and
transformers, and no peft), named by environment variables:

    .venv/bin/python tests/vllm_cpu/build_models.py --out runs/vllm-test
    SYNPO_TINY_TEXT_MODEL=runs/vllm-test/tiny-text SYNPO_TINY_TEXT_LORA=runs/vllm-test/tiny-text-lora \
        .venv-vllm/bin/python -m pytest tests/vllm_cpu

In a venv where vLLM does not import, the run stops with that instruction. One ``LLM`` is loaded per
session (≈25 s on 2 cores); vLLM's engine core runs in a spawned process.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HOW_TO_RUN = (
    "tests/vllm_cpu run in the vLLM venv: bash infra/vllm_cpu_venv.sh; "
    ".venv/bin/python tests/vllm_cpu/build_models.py --out runs/vllm-test; "
    "SYNPO_TINY_TEXT_MODEL=runs/vllm-test/tiny-text SYNPO_TINY_TEXT_LORA=runs/vllm-test/tiny-text-lora "
    ".venv-vllm/bin/python -m pytest tests/vllm_cpu"
)


def pytest_collection_modifyitems(config, items):
    """These tests exist to run vLLM: a venv where it does not import is an error, never a silent skip."""
    try:
        from vllm import LLM  # noqa: F401
    except ImportError as error:
        raise pytest.UsageError(f"vllm does not import in this venv ({error}). {HOW_TO_RUN}") from error


def built_folder(variable: str, marker_file: str) -> Path:
    """The folder named by ``variable``; the session fails with the build command when it is unset or not built."""
    value = os.environ.get(variable)
    if not value:
        pytest.fail(f"{variable} is not set. {HOW_TO_RUN}", pytrace=False)
    folder = Path(value)
    if not (folder / marker_file).is_file():
        pytest.fail(f"{variable}={value} has no {marker_file}. {HOW_TO_RUN}", pytrace=False)
    return folder


@pytest.fixture(scope="session")
def tiny_text_model() -> Path:
    return built_folder("SYNPO_TINY_TEXT_MODEL", "config.json")


@pytest.fixture(scope="session")
def tiny_text_lora() -> Path:
    return built_folder("SYNPO_TINY_TEXT_LORA", "adapter_config.json")


@pytest.fixture(scope="session")
def engine(tiny_text_model):
    """The one vLLM engine of the session, on CPU settings, with a LoRA slot (rank 8, the test adapter's)."""
    from synpo.sampling.vllm_engine import VLLMEngine, VLLMSettings

    settings = VLLMSettings(
        dtype="float32", gpu_memory_utilization=0.1, max_model_len=2048, enable_chunked_prefill=False, enable_lora=True, max_lora_rank=8
    )
    engine = VLLMEngine(tiny_text_model, settings)
    yield engine
    engine.llm.llm_engine.engine_core.shutdown()  # now, while pytest still captures vLLM's shutdown log lines


@pytest.fixture
def generate_calls(engine, monkeypatch) -> list[tuple[list[dict], list]]:
    """Records every ``LLM.generate`` call of a test: (the prompts vLLM received, its RequestOutputs)."""
    calls = []
    real_generate = engine.llm.generate

    def recording_generate(prompts, *args, **kwargs):
        outputs = real_generate(prompts, *args, **kwargs)
        calls.append((list(prompts), outputs))
        return outputs

    monkeypatch.setattr(engine.llm, "generate", recording_generate)
    return calls
