"""The judge client against a real ``vllm serve`` (OpenAI server of the CPU vLLM build), JSON-constrained.

Runs in the MAIN venv; the server runs from the vLLM venv as a subprocess, serving the tiny random
text model that ``make test-vllm`` builds:

    HF_HUB_OFFLINE=1 .venv/bin/python tests/vllm_cpu/build_models.py --out runs/vllm-test
    SYNPO_TINY_TEXT_MODEL=runs/vllm-test/tiny-text .venv/bin/python -m pytest tests/judging/test_judge_vllm_server.py

Without the vLLM venv or the model the test is skipped with that command, unless
``SYNPO_REQUIRE_VLLM=1`` (``make test`` sets it), where it fails. ``SYNPO_VLLM_VENV`` names another
vLLM venv than ``.venv-vllm``.

Server settings: the module entrypoint, because the ``vllm`` console script looks up the version of
the distribution ``vllm`` and the installed one is ``vllm-cpu``; structured outputs through
``guidance`` without free whitespace. Measured with the other settings: the default (``xgrammar``,
whitespace allowed) lets the random model write newlines until ``max_tokens``; ``xgrammar`` without
whitespace lets raw control characters (0x02, 0x1a) into the JSON strings.

The model is random, so its reasoning is noise; what must hold is that every schema-constrained
reply parses into in-range scores. That needs the reasoning's ``maxLength`` (``max_reasoning_chars``):
without it, 2 of this video's 7 replies repeated themselves until ``max_tokens`` and were cut off
mid-string. Measured on 2 cores: server start ≈ 30 s, the 8 judge calls ≈ 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from synpo.judging import Judge, JudgeConfig, JudgeInput
from synpo.judging.client import ChatClient
from synpo.judging.prompts import factuality_messages
from synpo.testing.loopback_server import free_port

REPO = Path(__file__).resolve().parents[2]
SERVED_MODEL = "tiny-text"
STARTUP_TIMEOUT_S = 180.0
HOW_TO_BUILD = (
    "make vllm-venv; HF_HUB_OFFLINE=1 .venv/bin/python tests/vllm_cpu/build_models.py --out runs/vllm-test; "
    "SYNPO_TINY_TEXT_MODEL=runs/vllm-test/tiny-text .venv/bin/python -m pytest tests/judging/test_judge_vllm_server.py"
)


def missing(reason: str) -> None:
    """Skip (a machine without the vLLM venv) or, under SYNPO_REQUIRE_VLLM=1, fail."""
    message = f"{reason}. Build and run with: {HOW_TO_BUILD}"
    if os.environ.get("SYNPO_REQUIRE_VLLM") == "1":
        pytest.fail(f"SYNPO_REQUIRE_VLLM=1 but {message}", pytrace=False)
    pytest.skip(message)


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory) -> Iterator[str]:
    """A vLLM OpenAI server on a free loopback port; yields its base URL, kills its process group after the module."""
    python = Path(os.environ.get("SYNPO_VLLM_VENV", REPO / ".venv-vllm")) / "bin" / "python"
    if not (python.parents[1] / ".synpo-vllm-installed").is_file():  # a half-built venv (its install failed) has a python too
        missing(f"the vLLM venv is not built ({python.parents[1]}/.synpo-vllm-installed does not exist)")
    model = os.environ.get("SYNPO_TINY_TEXT_MODEL")
    if not model:
        missing("SYNPO_TINY_TEXT_MODEL is not set")
    if not (Path(model) / "config.json").is_file():
        missing(f"SYNPO_TINY_TEXT_MODEL={model} has no config.json")
    port = free_port()
    command = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", model, "--served-model-name", SERVED_MODEL, "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--gpu-memory-utilization", "0.1", "--max-model-len", "2048", "--no-enable-chunked-prefill",
        "--structured-outputs-config", '{"backend": "guidance", "disable_any_whitespace": true}',
    ]  # fmt: skip
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not healthy(port):
            if server.poll() is not None:
                problem = f"vLLM server exited with {server.returncode} before it was healthy"
            elif time.monotonic() > deadline:
                problem = f"vLLM server not healthy after {STARTUP_TIMEOUT_S:g} s"
            else:
                time.sleep(0.5)
                continue
            pytest.fail(f"{problem}; {log_path}:\n{log_tail(log_path)}", pytrace=False)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process_group(server)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop_process_group(server: subprocess.Popen) -> None:
    """SIGTERM to the server's whole group (API server + engine core), SIGKILL to what is left after 20 s."""
    with contextlib.suppress(ProcessLookupError):  # an early exit was reaped by poll(): its group may be gone
        os.killpg(server.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):  # the engine core may outlive the API server
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def judge_config(base_url: str, **fields) -> JudgeConfig:
    settings = {"backend": "openai", "base_url": base_url, "model": SERVED_MODEL, "max_tokens": 1024, "max_malformed_retries": 0}
    return JudgeConfig(**{**settings, **fields})


VIDEO = JudgeInput(
    video_id="toy-vllm",
    prompt="Describe this video in detail: the subject matter, the setting, and what happens over time, in order.",
    candidates=[
        "A red ball rolls left across a green floor and stops beside a blue box.",
        "A yellow cat jumps onto a table and knocks over a glass.",
        "A red ball rolls to the left on a green floor, then rests next to a box.",
    ],
    clip_captions=["A red ball lies on a green floor.", "The red ball rolls left and stops beside a blue box."],
)


@pytest.mark.slow
def test_judge_video_parses_every_schema_constrained_reply(vllm_server):
    """Every one of the 2*3+1 calls is answered once (no malformed retries allowed) with in-range scores,
    its reasoning within maxLength, and the token counts are the server's."""
    config = judge_config(vllm_server, response_format="json_schema")

    async def run():
        async with Judge(config) as judge:
            return await judge.judge_video(VIDEO)

    verdict = asyncio.run(run())
    assert verdict.calls == verdict.http_attempts == 2 * 3 + 1 and verdict.failed_calls == 0
    assert verdict.prompt_tokens > 0 and verdict.completion_tokens > 0
    for candidate in verdict.candidates:
        assert candidate.failures == {}
        assert 0 <= candidate.c1 <= 5 and 0 <= candidate.c2 <= 5 and 0 <= candidate.c3 <= 3
        assert all(len(reasoning) <= config.max_reasoning_chars for reasoning in candidate.reasoning.values())
    assert verdict.pair.chosen_index is not None  # three judged candidates: a pair is selected (kept or not by margin)


@pytest.mark.slow
def test_json_object_mode_reaches_the_server_and_a_reply_without_scores_is_recorded(vllm_server):
    """``json_object`` constrains the reply to JSON but not to the schema: the random model closes the
    object at once (``{}``), which the client records as a malformed answer, with the server's token
    counts, instead of raising. (That is why ``json_schema`` is the default.)"""

    async def run():
        client = ChatClient(judge_config(vllm_server, response_format="json_object"))
        try:
            return await client.ask(factuality_messages(VIDEO.candidates[0], VIDEO.clip_captions), "c1")
        finally:
            await client.aclose()

    result = asyncio.run(run())
    assert result.attempts == 1 and result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.answer is None and result.failure.startswith("malformed answer: no 'score' key")
