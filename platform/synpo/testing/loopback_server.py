"""A real OpenAI-compatible judge server on loopback, with faults on demand, for tests, benchmarks and dry runs.

    with LoopbackJudgeServer(FaultPlan(latency_ms=10, rate_429=0.2)) as server:   # background thread, free port
        config = JudgeConfig(backend="openai", base_url=server.base_url, model="loopback-judge")
        ...
        server.stats()["max_in_flight"]

    with loopback_server_process(FaultPlan(latency_ms=100)) as base_url:           # a subprocess (own CPU core)
        ...   # counters: GET {base_url}/../stats

    python -m synpo.testing.loopback_server --port 8123 --latency-ms 100 --rate-429 0.1

What it answers and how faults are drawn: :mod:`synpo.testing.loopback_app`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import uvloop
from aiohttp import web

from synpo.testing.loopback_app import FaultPlan, ServerState, build_app

__all__ = ["FaultPlan", "LoopbackJudgeServer", "free_port", "loopback_server_process", "main"]


class LoopbackJudgeServer:
    """The server in a background thread of this process (like moto's ``ThreadedMotoServer``)."""

    def __init__(self, faults: FaultPlan | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._state = ServerState(faults or FaultPlan())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> LoopbackJudgeServer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            self._runner = web.AppRunner(build_app(self._state), handler_cancellation=True, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            self.port = self._runner.addresses[0][1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="loopback-judge", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("the loopback judge server did not start within 30 s")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._loop = self._runner = self._thread = None

    def __enter__(self) -> LoopbackJudgeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> dict:
        return self._state.snapshot()

    def reset(self) -> None:
        self._state.reset()

    def set_faults(self, faults: FaultPlan) -> None:
        with self._state.lock:
            self._state.faults = faults


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def loopback_server_process(faults: FaultPlan | None = None, port: int | None = None) -> Iterator[str]:
    """Run the server as a subprocess (its own CPU core); yields its base URL, stops it on exit."""
    port = port or free_port()
    command = [sys.executable, "-m", "synpo.testing.loopback_server", "--port", str(port), "--faults-json", (faults or FaultPlan()).model_dump_json()]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"loopback judge server exited with {process.returncode}: {process.stderr.read()[-2000:]}")
            try:
                httpx.get(f"{base_url}/models", timeout=1.0, trust_env=False).raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"loopback judge server on port {port} did not answer within 30 s") from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


NUMBER_FLAGS = ("latency_ms", "rate_429", "retry_after_s", "rate_500", "rate_timeout", "hang_s", "rate_malformed", "rate_out_of_range")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="An OpenAI-compatible judge server on loopback with injectable faults.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (keep it loopback)")
    parser.add_argument("--port", type=int, default=8123, help="port to listen on")
    parser.add_argument("--faults-json", default=None, help="a whole FaultPlan as JSON (replaces the flags below)")
    for name in NUMBER_FLAGS:
        field = FaultPlan.model_fields[name]
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=field.default, help=field.description)
    parser.add_argument("--only-criteria", nargs="*", choices=("c1", "c2", "c3"), default=[], help="apply faults only to these criteria")
    parser.add_argument("--answer-style", choices=("json", "fenced", "prose"), default="json", help="how replies wrap their JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    args = parser.parse_args(argv)
    if args.faults_json:
        faults = FaultPlan.model_validate_json(args.faults_json)
    else:
        chosen = {name: getattr(args, name) for name in (*NUMBER_FLAGS, "only_criteria", "answer_style", "seed")}
        faults = FaultPlan(**chosen)
    print(f"loopback judge listening on http://{args.host}:{args.port}/v1", flush=True)
    loop = uvloop.new_event_loop()  # uvloop (installed with ray[serve]) keeps the server's own overhead small
    web.run_app(
        build_app(ServerState(faults)), host=args.host, port=args.port, handler_cancellation=True, access_log=None, print=None, loop=loop
    )


if __name__ == "__main__":
    main()
