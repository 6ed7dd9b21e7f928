"""Load on the Ray Serve captioning app over loopback: dynamic batching on vs off, and autoscaling under a step load.

    .venv/bin/python bench/serve_load.py [--duration-s 15] [--max-tokens 16] [--concurrency 1 4 16 64] [--skip-scaling]

The app (:func:`synpo.serving.deployment.build_app`) runs on a local Ray in this process, HF engine on
CPU, ``--model`` (default the toy tiny VLM) with 8 frames at 160 px per video; each replica holds one Ray
CPU, so torch runs one thread in it. The load generator is a closed loop on one ``httpx.AsyncClient``
here: C clients, each sending its next request as soon as its last one is answered. A request is an
OpenAI chat completion (``POST /v1/chat/completions``), greedy, ``--max-tokens`` new tokens, with one of
4 toy videos (seed 1: 22-38 s, 160x120 at 8 fps, 14-54 KB) as a ``data:video/mp4;base64`` URL.

Part 1: one replica (max_ongoing_requests 64, max_queued_requests 256), for each concurrency with
dynamic batching on (``@serve.batch``, up to 16 requests per ``generate``) and off (every batch one
request), each point on a freshly deployed app, on and off next to each other: ``--warmup-s``
untimed, then ``--duration-s`` timed. Printed: requests/s and completion tokens/s (``usage``) of the
requests answered in the timed window, p50/p99 latency of the requests started in it, failures by
HTTP status (or exception) over the whole point; CPU per answered request of the load generator, the
Serve proxy, the replica and the rest of Ray (psutil over this process and the processes under it),
the cores all of them kept busy, and the machine's 1-minute load average (another job shows there);
last, batching on / off throughput per concurrency.

Part 2: autoscaling 1..2 replicas (1..3 with 4+ cores), target 2 ongoing requests per replica,
upscale after 2 s, downscale after 10 s, metrics every 0.5 s over 2 s; load steps 1 client (20 s) ->
16 clients (40 s) -> none (30 s). ``serve.status()``'s RUNNING and STARTING replicas are sampled every
second; printed per second: clients, replicas, requests answered; then how long each scaling step took
and the requests/s under 16 clients per replica count.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import asyncio
import base64
import socket
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
import ray
from ray import serve

from synpo.serving.deployment import build_app
from synpo.serving.settings import ServeSettings
from synpo.toy.videos import write_toy_videos

APP = "captioner"
ONE_REPLICA = {"min_replicas": 1, "max_replicas": 1, "max_ongoing_requests": 64, "max_queued_requests": 256}
ROLES = {"ray::ProxyActor": "proxy", "ray::ServeReplica": "replica"}  # process titles Ray sets
LOAD_STEPS = [(1, 20.0), (16, 40.0), (0, 30.0)]  # (clients, seconds)


@dataclass
class Answer:
    started_s: float  # since the load began
    finished_s: float
    status: str  # the HTTP status, or the exception's class name when no response came
    completion_tokens: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def deploy(args: argparse.Namespace, port: int, batching: dict, scaling: dict) -> None:
    """Run the app with these batching and scaling settings; returns once its replicas are up."""
    settings = ServeSettings.model_validate(
        {
            "model": args.model, "port": port, "engine": {"kind": "hf", "device": "cpu"}, "video": {"num_frames": 8, "max_side": 160},
            "batching": batching, "scaling": scaling,
        }
    )  # fmt: skip
    serve.run(build_app(settings), name=APP, route_prefix="/", blocking=False)


def replica_states() -> tuple[int, int]:
    """(RUNNING, STARTING) replicas of the app's deployment."""
    states = serve.status().applications[APP].deployments["Captioner"].replica_states
    return states.get("RUNNING", 0), states.get("STARTING", 0)


async def client(http: httpx.AsyncClient, url: str, bodies: list[dict], index: int, stop: asyncio.Event, start: float, answers: list[Answer]) -> None:
    """One closed-loop client: the next request as soon as the last is answered, until ``stop``."""
    sent = 0
    while not stop.is_set():
        body = bodies[(index + sent) % len(bodies)]
        sent += 1
        began = time.perf_counter()
        try:
            response = await http.post(url, json=body)
            status = str(response.status_code)
            tokens = response.json()["usage"]["completion_tokens"] if response.status_code == 200 else 0
        except httpx.HTTPError as error:  # recorded as a failure by its class name
            status, tokens = type(error).__name__, 0
        answers.append(Answer(began - start, time.perf_counter() - start, status, tokens))


async def sample_replicas(start: float, seconds: int, samples: list[tuple[int, int]]) -> None:
    for second in range(seconds):
        await asyncio.sleep(max(0.0, start + second - time.perf_counter()))
        samples.append(await asyncio.to_thread(replica_states))


async def run_load(
    base_url: str, bodies: list[dict], steps: list[tuple[int, float]], watch_replicas: bool
) -> tuple[list[Answer], list[tuple[int, int]]]:
    """Closed-loop load in steps of (clients, seconds); every request is waited for. Returns the answers and,
    with ``watch_replicas``, the (RUNNING, STARTING) replicas at each whole second."""
    token = os.environ.get(ServeSettings().auth.token_env)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    answers: list[Answer] = []
    replicas: list[tuple[int, int]] = []
    async with httpx.AsyncClient(limits=limits, timeout=300, trust_env=False, headers=headers) as http:
        start = time.perf_counter()
        total_s = sum(seconds for _, seconds in steps)
        tasks = [asyncio.create_task(sample_replicas(start, int(total_s), replicas))] if watch_replicas else []
        step_end_s = 0.0
        for clients, seconds in steps:
            stop = asyncio.Event()
            tasks += [asyncio.create_task(client(http, f"{base_url}/v1/chat/completions", bodies, index, stop, start, answers)) for index in range(clients)]
            step_end_s += seconds
            await asyncio.sleep(max(0.0, start + step_end_s - time.perf_counter()))
            stop.set()
        await asyncio.gather(*tasks)
    return answers, replicas


def failures(answers: list[Answer]) -> str:
    counts = Counter(answer.status for answer in answers if answer.status != "200")
    return ", ".join(f"{status}x{count}" for status, count in sorted(counts.items())) or "none"


def cpu_seconds() -> Counter:
    """CPU seconds so far of this process (the load generator) and the Ray processes under it, by Serve role."""
    used: Counter = Counter()
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            title, times = " ".join(process.cmdline()), process.cpu_times()
        except psutil.NoSuchProcess:  # a Ray worker that exited since the listing
            continue
        role = "client" if process == me else next((name for key, name in ROLES.items() if title.startswith(key)), "other")
        used[role] += times.user + times.system
    return used


def measure_point(base_url: str, bodies: list[dict], clients: int, args: argparse.Namespace) -> dict:
    """Throughput and latency at ``clients`` concurrent clients over the timed window after the warm-up;
    CPU per answered request over the whole point."""
    cpu_before, wall_before = cpu_seconds(), time.perf_counter()
    answers, _ = asyncio.run(run_load(base_url, bodies, [(clients, args.warmup_s + args.duration_s)], watch_replicas=False))
    cpu_used, wall_s = cpu_seconds() - cpu_before, time.perf_counter() - wall_before
    window_end_s = args.warmup_s + args.duration_s
    answered = [a for a in answers if a.status == "200" and args.warmup_s <= a.finished_s < window_end_s]
    latencies_ms = [(a.finished_s - a.started_s) * 1e3 for a in answers if a.status == "200" and args.warmup_s <= a.started_s < window_end_s]
    return {
        "requests_per_s": len(answered) / args.duration_s,
        "tokens_per_s": sum(a.completion_tokens for a in answered) / args.duration_s,
        "p50_ms": np.percentile(latencies_ms, 50),
        "p99_ms": np.percentile(latencies_ms, 99),
        "failures": failures(answers),
        "cpu_ms": {role: cpu_used[role] / len(answers) * 1e3 for role in ("client", "proxy", "replica", "other")},
        "cores_used": sum(cpu_used.values()) / wall_s,
        "load_1m": os.getloadavg()[0],
    }


def batching_sweep(base_url: str, port: int, bodies: list[dict], args: argparse.Namespace) -> None:
    print(
        f"\nPart 1: one replica, {args.model}, {args.max_tokens} new tokens, 8 frames at 160 px; "
        f"{args.warmup_s:g} s warm-up + {args.duration_s:g} s timed per point; os.cpu_count() = {os.cpu_count()}"
    )
    print(f"{'':34}{'CPU ms per request':^31}")
    print(
        f"{'clients':>7} {'batching':>8} {'req/s':>6} {'tok/s':>6} {'p50 ms':>6} {'p99 ms':>6} "
        f"{'client':>7} {'proxy':>7} {'replica':>7} {'other':>7} {'cores':>5} {'load 1m':>7}  failures"
    )
    rates: dict[tuple[int, bool], float] = {}
    for clients in args.concurrency:
        for enabled in (True, False):  # a fresh app per point, on and off side by side: drift on a shared machine hits both
            deploy(args, port, {"enabled": enabled, "max_batch_size": 16}, ONE_REPLICA)
            point = measure_point(base_url, bodies, clients, args)
            serve.delete(APP)
            rates[clients, enabled] = point["requests_per_s"]
            cpu = " ".join(f"{point['cpu_ms'][role]:7.1f}" for role in ("client", "proxy", "replica", "other"))
            print(
                f"{clients:>7} {'on' if enabled else 'off':>8} {point['requests_per_s']:6.1f} {point['tokens_per_s']:6.0f} "
                f"{point['p50_ms']:6.0f} {point['p99_ms']:6.0f} {cpu} {point['cores_used']:5.2f} {point['load_1m']:7.1f}  {point['failures']}"
            )
    print(f"\n{'clients':>7} {'on req/s':>9} {'off req/s':>9} {'on / off':>8}")
    for clients in args.concurrency:
        on, off = rates[clients, True], rates[clients, False]
        print(f"{clients:>7} {on:9.1f} {off:9.1f} {on / off:7.2f}x")


def scaling_timeline(base_url: str, port: int, bodies: list[dict], args: argparse.Namespace) -> None:
    max_replicas = 3 if os.cpu_count() >= 4 else 2
    scaling = {
        "min_replicas": 1, "max_replicas": max_replicas, "target_ongoing_requests": 2, "upscale_delay_s": 2, "downscale_delay_s": 10,
        "metrics_interval_s": 0.5, "look_back_period_s": 2, "max_ongoing_requests": 64, "max_queued_requests": 256,
    }  # fmt: skip
    deploy(args, port, {"enabled": True, "max_batch_size": 16}, scaling)
    answers, replicas = asyncio.run(run_load(base_url, bodies, LOAD_STEPS, watch_replicas=True))
    serve.delete(APP)
    clients_at = [clients for clients, seconds in LOAD_STEPS for _ in range(int(seconds))]
    answered_at = Counter(int(answer.finished_s) for answer in answers if answer.status == "200")
    steps = " -> ".join(f"{clients} clients ({seconds:g} s)" for clients, seconds in LOAD_STEPS)
    print(f"\nPart 2: autoscaling 1..{max_replicas} replicas (os.cpu_count() = {os.cpu_count()}), target 2 ongoing per replica, batching on; {steps}")
    print(f"{'t (s)':>5} {'clients':>7} {'running':>7} {'starting':>8} {'answered':>8}")
    for second, (running, starting) in enumerate(replicas):
        print(f"{second:>5} {clients_at[second]:>7} {running:>7} {starting:>8} {answered_at[second]:>8}")
    step_up_s, step_down_s = int(LOAD_STEPS[0][1]), int(LOAD_STEPS[0][1] + LOAD_STEPS[1][1])
    peak = max(running for running, _ in replicas)
    first_start_s = next((second for second, (_, starting) in enumerate(replicas) if second >= step_up_s and starting), None)
    first_peak_s = next(second for second, (running, _) in enumerate(replicas) if running == peak)
    back_to_one_s = next((second for second, (running, _) in enumerate(replicas) if second >= step_down_s and running == 1), None)
    if first_start_s is not None:
        print(f"a new replica first STARTING {first_start_s - step_up_s:+d} s after the step to 16 clients")
    print(f"peak {peak} replicas RUNNING, first {first_peak_s - step_up_s:+d} s after the step to 16 clients")
    print(f"back to 1 replica {back_to_one_s - step_down_s:+d} s after the load stopped" if back_to_one_s is not None else "still above 1 replica at the end")
    busy = [(replicas[second], answered_at[second]) for second in range(step_up_s, step_down_s)]
    for running, starting in sorted({states for states, _ in busy}):
        per_second = [done for states, done in busy if states == (running, starting)]
        print(f"16 clients, {running} running + {starting} starting: {np.mean(per_second):.1f} requests/s over {len(per_second)} s")
    print(f"failures: {failures(answers)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy://tiny-vlm", help="the model the app serves (toy://tiny-vlm, models:/NAME@ALIAS, a folder)")
    parser.add_argument("--max-tokens", type=int, default=16, help="max_tokens of every request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64], help="concurrent clients per part-1 point (at most 128)")
    parser.add_argument("--duration-s", type=float, default=15.0, help="timed seconds per part-1 point")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="untimed seconds of load before each part-1 window")
    parser.add_argument("--skip-scaling", action="store_true", help="skip part 2 (autoscaling under a step load, 90 s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="synpo-bench-serve-") as folder:
        write_toy_videos(folder, count=4, seed=1, progress=False)
        urls = ["data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode() for path in sorted(Path(folder).glob("*.mp4"))]
    bodies = [
        {"model": "synpo-captioner", "max_tokens": args.max_tokens, "temperature": 0, "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}}]}]}
        for url in urls
    ]  # fmt: skip
    port = free_port()
    ray.init(num_cpus=max(2, os.cpu_count()), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 300})
    try:
        batching_sweep(f"http://127.0.0.1:{port}", port, bodies, args)
        if not args.skip_scaling:
            scaling_timeline(f"http://127.0.0.1:{port}", port, bodies, args)
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
