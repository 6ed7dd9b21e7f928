"""A vLLM engine whose process dies mid-job: ``generate`` raises EngineDead, the engine actor ends itself
(synpo.pairgen.sample_stage.engine_died) and Ray restarts it and retries the call on a fresh engine.

A real Ray actor holding a real vLLM engine (the tiny text model); the first call kills the actor's own
EngineCore process, as a GPU fault would, before it generates."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from vllm_helpers import CPU_SETTINGS

pytestmark = [pytest.mark.vllm, pytest.mark.ray, pytest.mark.slow]


class Captioner:
    def __init__(self, model: str, attempts: str) -> None:
        from synpo.sampling.vllm_engine import VLLMEngine, VLLMSettings

        self.engine = VLLMEngine(model, VLLMSettings(**CPU_SETTINGS))
        self.attempts = Path(attempts)

    def caption(self) -> tuple[str, list[str]]:
        import psutil

        from synpo.pairgen.sample_stage import engine_died
        from synpo.sampling.request import CaptionRequest, EngineDead, SamplingParams

        with self.attempts.open("a") as log:
            log.write(f"{os.getpid()}\n")
        if len(self.attempts.read_text().split()) == 1:  # the first attempt: the engine's process dies
            (core,) = [child for child in psutil.Process().children(recursive=True) if "EngineCore" in " ".join(child.cmdline()) + child.name()]
            core.kill()
            core.wait(30)
            time.sleep(2)  # vLLM's monitor thread notices the death
        request = CaptionRequest(request_id="r", prompt="Describe the video.", params=SamplingParams(n=1, temperature=0, max_new_tokens=6))
        try:
            result = self.engine.generate([request])
        except EngineDead as error:
            engine_died(error)
        return result[0].candidates[0].text, self.attempts.read_text().split()


def test_a_dead_engine_ends_its_actor_and_ray_retries_on_a_fresh_engine(tiny_text_model, tmp_path):
    import ray

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actor class travels by value (this file is not importable there)
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}})
    try:
        actor = ray.remote(max_restarts=1, max_task_retries=1)(Captioner).remote(str(tiny_text_model), str(tmp_path / "attempts"))
        text, attempts = ray.get(actor.caption.remote(), timeout=300)
    finally:
        ray.shutdown()
    assert len(attempts) == 2 and attempts[0] != attempts[1]  # a second process, started by Ray, served the retried call
    assert isinstance(text, str)
