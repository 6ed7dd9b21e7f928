"""tests/vllm_cpu run in the vLLM CPU venv only: `.venv-vllm/bin/python -m pytest tests/vllm_cpu`.

They need models, adapters and toy videos built beforehand in the MAIN venv (where the platform's
training runs; the vLLM venv has another torch and transformers), in one folder:

    .venv/bin/python tests/vllm_cpu/build_models.py --out runs/vllm-test
    SYNPO_VLLM_TEST_DIR=runs/vllm-test .venv-vllm/bin/python -m pytest tests/vllm_cpu

In a venv where vLLM does not import, the run stops with that instruction. One ``LLM`` per model is
loaded per session (≈25 s each on 2 cores); vLLM's engine core runs in a spawned process.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from vllm_helpers import record_generate_calls, start_engine, stop_engine

HOW_TO_RUN = (
    "tests/vllm_cpu run in the vLLM venv: bash infra/vllm_cpu_venv.sh; "
    ".venv/bin/python tests/vllm_cpu/build_models.py --out runs/vllm-test; "
    "SYNPO_VLLM_TEST_DIR=runs/vllm-test .venv-vllm/bin/python -m pytest tests/vllm_cpu  (or: make test-vllm)"
)


def pytest_collection_modifyitems(config, items):
    """These tests exist to run vLLM: a venv where it does not import is an error, never a silent skip."""
    try:
        from vllm import LLM  # noqa: F401
    except ImportError as error:
        raise pytest.UsageError(f"vllm does not import in this venv ({error}). {HOW_TO_RUN}") from error


def built_folder(name: str, marker_file: str) -> Path:
    """``$SYNPO_VLLM_TEST_DIR/name``; the session fails with the build command when it is unset or not built."""
    root = os.environ.get("SYNPO_VLLM_TEST_DIR")
    if not root:
        pytest.fail(f"SYNPO_VLLM_TEST_DIR is not set. {HOW_TO_RUN}", pytrace=False)
    folder = Path(root) / name
    if not (folder / marker_file).is_file():
        pytest.fail(f"{folder} has no {marker_file}. {HOW_TO_RUN}", pytrace=False)
    return folder


@pytest.fixture(scope="session")
def built():
    """``built(name, marker_file) -> Path``: a folder build_models.py wrote (for tests that pick one by parameter)."""
    return built_folder


@pytest.fixture(scope="session")
def tiny_text_model() -> Path:
    return built_folder("tiny-text", "config.json")


@pytest.fixture(scope="session")
def tiny_text_lora() -> Path:
    return built_folder("tiny-text-lora", "adapter_config.json")


@pytest.fixture(scope="session")
def tiny_vlm() -> Path:
    return built_folder("tiny-vlm", "config.json")


@pytest.fixture(scope="session")
def tiny_vlm_lora() -> Path:
    return built_folder("tiny-vlm-lora", "adapter_config.json")


@pytest.fixture(scope="session")
def toy_videos() -> list[Path]:
    return sorted(built_folder("videos", "manifest.jsonl").glob("*.mp4"))


@pytest.fixture(scope="module")
def engine(tiny_text_model):
    """The session's vLLM engine on the text model, on CPU settings, with a LoRA slot (rank 8, the test adapter's)."""
    engine = start_engine(tiny_text_model, enable_lora=True, max_lora_rank=8)
    yield engine
    stop_engine(engine)


@pytest.fixture
def generate_calls(engine, monkeypatch) -> list[tuple[list[dict], list]]:
    return record_generate_calls(engine, monkeypatch)
