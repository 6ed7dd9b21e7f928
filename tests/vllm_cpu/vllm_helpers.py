"""Helpers shared by the vLLM tests (importable as ``vllm_helpers``: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

CPU_SETTINGS = {"dtype": "float32", "gpu_memory_utilization": 0.1, "max_model_len": 2048, "enable_chunked_prefill": False, "enforce_eager": True}  # eager: ~9 s less per engine start


def start_engine(model: Path, **settings):
    from synpo.sampling.vllm_engine import VLLMEngine, VLLMSettings

    return VLLMEngine(model, VLLMSettings(**CPU_SETTINGS, **settings))


def stop_engine(engine) -> None:
    engine.llm.llm_engine.engine_core.shutdown()  # now, while pytest still captures vLLM's shutdown log lines


def record_generate_calls(engine, monkeypatch) -> list[tuple[list[dict], list]]:
    """Records every ``LLM.generate`` call of ``engine`` in a test: (the prompts vLLM received, its RequestOutputs)."""
    calls = []
    real_generate = engine.llm.generate

    def recording_generate(prompts, *args, **kwargs):
        outputs = real_generate(prompts, *args, **kwargs)
        calls.append((list(prompts), outputs))
        return outputs

    monkeypatch.setattr(engine.llm, "generate", recording_generate)
    return calls
