"""Judge client throughput against the loopback judge server, and the rules judge on the toy world.

    .venv/bin/python bench/judge_throughput.py [--latency-ms 100] [--calls-per-slot 16] [--videos 48]

Part 1: the loopback judge server runs as a subprocess (its own core) and answers every call after
``--latency-ms``. For max_concurrency c in 1, 8, 32, 64 the client sends max(20, calls_per_slot*c)
C1 calls (distinct bodies, JSON-schema response_format, validated replies) after a warm-up round;
with a server latency L the best possible rate is c / L calls/s. Printed: calls/s, that bound, the
ratio (target >= 90% up to 64) and the server's max in-flight count. A last row runs whole videos
through ``Judge.judge_videos`` (10 candidates: 21 calls per video) at concurrency 64. The server
answers with the rules judge (~0.2 ms of its CPU per call), so on a 2-core machine client and
server share the CPU; a real judge server runs elsewhere. Last, bare POSTs at concurrency 64 through
``httpx.AsyncClient`` and ``aiohttp.ClientSession``: why the client uses aiohttp.

Part 2: the rules judge's ranking of toy-world captions against the truth
(:mod:`synpo.toy.judge_check`): how often its chosen candidate is the true caption, and how often
its rejected one is.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import httpx

from synpo.judging import Judge, JudgeConfig, JudgeInput
from synpo.judging.client import ChatClient
from synpo.judging.prompts import factuality_messages
from synpo.testing.loopback_server import FaultPlan, loopback_server_process
from synpo.toy.judge_check import toy_judge_inputs, toy_ranking_rates


async def client_rate(config: JudgeConfig, calls: int, clip_captions: list[str], caption: str) -> tuple[float, int]:
    """(calls per second, failed calls) for ``calls`` C1 calls, after one untimed warm-up round."""
    client = ChatClient(config)
    try:
        warm_up = [client.ask(factuality_messages(f"warm-up {index}. {caption}", clip_captions), "c1") for index in range(config.max_concurrency)]
        await asyncio.gather(*warm_up)
        start = time.perf_counter()
        results = await asyncio.gather(
            *(client.ask(factuality_messages(f"Call {index}. {caption}", clip_captions), "c1") for index in range(calls))
        )
        elapsed = time.perf_counter() - start
    finally:
        await client.aclose()
    return calls / elapsed, sum(result.answer is None for result in results)


async def raw_rate(library: str, base_url: str, concurrency: int, calls: int, body: dict) -> float:
    """Calls per second of bare POSTs (no retries, no parsing) through httpx or aiohttp, after a warm-up round."""
    in_flight = asyncio.Semaphore(concurrency)
    if library == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        client = httpx.AsyncClient(limits=limits, trust_env=False, timeout=60)

        async def post() -> None:
            async with in_flight:
                (await client.post(f"{base_url}/chat/completions", json=body)).raise_for_status()
    else:
        client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

        async def post() -> None:
            async with in_flight, client.post(f"{base_url}/chat/completions", json=body) as response:
                response.raise_for_status()
                await response.read()

    await asyncio.gather(*(post() for _ in range(concurrency)))
    start = time.perf_counter()
    await asyncio.gather(*(post() for _ in range(calls)))
    elapsed = time.perf_counter() - start
    await (client.aclose() if library == "httpx" else client.close())
    return calls / elapsed


async def judge_rate(config: JudgeConfig, videos: list[JudgeInput]) -> tuple[float, int]:
    """(calls per second, failed calls) of ``Judge.judge_videos`` over ``videos``."""
    async with Judge(config) as judge:
        start = time.perf_counter()
        verdicts = await judge.judge_videos(videos)
        elapsed = time.perf_counter() - start
    return sum(verdict.calls for verdict in verdicts) / elapsed, sum(verdict.failed_calls for verdict in verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=100.0, help="server latency per call, milliseconds")
    parser.add_argument("--calls-per-slot", type=int, default=16, help="calls per concurrency slot (at least 20 calls)")
    parser.add_argument("--videos", type=int, default=48, help="videos (10 candidates each) for the judge_videos row")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64], help="max_concurrency values")
    parser.add_argument("--toy-scenes", type=int, default=200, help="toy scenes for the rules-judge check")
    args = parser.parse_args()

    videos, _ = toy_judge_inputs(args.videos, seed=5, altered_per_scene=9)
    caption, clip_captions = videos[0].candidates[0], videos[0].clip_captions
    latency_s = args.latency_ms / 1000
    with loopback_server_process(FaultPlan(latency_ms=args.latency_ms)) as base_url:
        stats_url = base_url.removesuffix("/v1") + "/stats"
        print(f"server latency {args.latency_ms:g} ms; bound = concurrency / latency")
        print(f"{'concurrency':>11} {'calls':>6} {'calls/s':>8} {'bound':>7} {'ratio':>6} {'failed':>6} {'server max in-flight':>21}")
        for concurrency in args.concurrency:
            config = JudgeConfig(backend="openai", base_url=base_url, model="loopback-judge", max_concurrency=concurrency, max_retries=0)
            calls = max(20, args.calls_per_slot * concurrency)
            httpx.post(stats_url.replace("/stats", "/reset"), trust_env=False)
            rate, failed = asyncio.run(client_rate(config, calls, clip_captions, caption))
            in_flight = httpx.get(stats_url, trust_env=False).json()["max_in_flight"]
            bound = concurrency / latency_s
            print(f"{concurrency:>11} {calls:>6} {rate:8.1f} {bound:7.1f} {rate / bound:6.1%} {failed:>6} {in_flight:>21}")
        config = JudgeConfig(backend="openai", base_url=base_url, model="loopback-judge", max_concurrency=64, max_retries=0)
        rate, failed = asyncio.run(judge_rate(config, videos))
        bound = 64 / latency_s
        print(f"judge_videos, {len(videos)} videos x 10 candidates (21 calls each), concurrency 64: {rate:.1f} calls/s of {bound:.0f} ({rate / bound:.1%}), {failed} failed")
        body = {"model": "loopback-judge", "messages": factuality_messages(caption, clip_captions)}
        for library in ("httpx", "aiohttp"):
            rate = asyncio.run(raw_rate(library, base_url, 64, 16 * 64, body))
            print(f"bare {library} POSTs, concurrency 64: {rate:.1f} calls/s of {bound:.0f} ({rate / bound:.1%})")

    report = toy_ranking_rates(num_scenes=args.toy_scenes, seed=0)
    print(
        f"\nrules judge on {report.scenes} toy scenes, {report.candidates_per_scene} candidates each (1 true + altered):\n"
        f"  chosen is the true caption   {report.top_is_true:.1%}  (chance {report.chance:.1%})\n"
        f"  rejected is the true caption {report.bottom_is_true:.1%}\n"
        f"  pairs kept (margin >= 4): {report.kept_pairs}; true caption chosen in {report.kept_with_true_chosen}, rejected in {report.kept_with_true_rejected}"
    )


if __name__ == "__main__":
    main()
