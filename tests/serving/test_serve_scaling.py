"""Overload and autoscaling of the captioning deployment, for real on the local Ray (short delays in these settings).

Serve's own counters are what is asserted: replicas RUNNING in ``serve.status()``, and what clients get
back: a saturated deployment answers 503 with ``Retry-After`` at once (never hangs), and the others 200.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx
import pytest
from serve_support import auth, chat_with_video, data_url, running_app

pytestmark = [pytest.mark.ray, pytest.mark.slow]
BASE = {"model": "toy://tiny-vlm", "engine": {"kind": "hf", "device": "cpu"}, "video": {"num_frames": 8, "max_side": 160}, "limits": {"max_new_tokens": 64}}


@pytest.fixture(scope="module")
def video_url(toy_video_dir) -> str:
    return data_url(sorted(toy_video_dir.glob("*.mp4"))[0].read_bytes())


def running_replicas() -> int:
    from ray import serve

    status = serve.status().applications["captioner"].deployments["Captioner"]
    return status.replica_states.get("RUNNING", 0)


def test_a_saturated_deployment_answers_503_with_retry_after_at_once(ray_cluster, video_url):
    scaling = {"min_replicas": 1, "max_replicas": 1, "max_ongoing_requests": 1, "max_queued_requests": 1, "retry_after_s": 3, "num_cpus": 0.5}
    with running_app({**BASE, "scaling": scaling, "batching": {"enabled": False}}) as (base, _):
        body = chat_with_video(video_url, max_tokens=48)

        def call() -> tuple[int, str | None, float]:
            start = time.perf_counter()
            response = httpx.post(f"{base}/v1/chat/completions", headers=auth(), json=body, timeout=120)
            return response.status_code, response.headers.get("retry-after"), time.perf_counter() - start

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(lambda _: call(), range(6)))
    statuses = [status for status, _, _ in outcomes]
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, outcomes
    rejected = [(retry_after, seconds) for status, retry_after, seconds in outcomes if status == 503]
    assert all(retry_after == "3" for retry_after, _ in rejected), rejected
    slowest_success = max(seconds for status, _, seconds in outcomes if status == 200)
    assert all(seconds < slowest_success for _, seconds in rejected)  # refused without waiting for a replica


def test_replicas_scale_up_under_load_and_back_down_after(ray_cluster, video_url):
    scaling = {
        "min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1, "upscale_delay_s": 0.5, "downscale_delay_s": 3,
        "metrics_interval_s": 0.1, "look_back_period_s": 1, "max_ongoing_requests": 4, "max_queued_requests": 64, "num_cpus": 0.5,
    }  # fmt: skip
    with running_app({**BASE, "scaling": scaling}) as (base, _):
        assert running_replicas() == 1
        stop, seen, failures = threading.Event(), [], []

        def load() -> None:
            while not stop.is_set():
                response = httpx.post(f"{base}/v1/chat/completions", headers=auth(), json=chat_with_video(video_url, max_tokens=24), timeout=120)
                if response.status_code != 200:
                    failures.append(response.status_code)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for _ in range(4):
                pool.submit(load)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and max(seen, default=0) < 2:
                seen.append(running_replicas())
                time.sleep(0.5)
            stop.set()
        assert max(seen) >= 2, seen
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and running_replicas() > 1:
            time.sleep(0.5)
        assert running_replicas() == 1 and failures == []
