"""``synpo judge score`` under stress: killed mid-run (SIGTERM, SIGKILL), a judge that is down, a bad --out."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from test_judge_cli import run_cli, write_candidates

from synpo.testing.loopback_server import FaultPlan, free_port

REPO = Path(__file__).resolve().parents[2]
ANSWERED_BEFORE_HOLD = 23  # 6 videos x 9 calls = 54 calls; the server answers 23, then holds every request


def score_command(tmp_path: Path, base_url: str) -> list[str]:
    return [
        sys.executable, "-m", "synpo.cli.main", "judge", "score", "--input", str(tmp_path / "candidates.jsonl"),
        "--out", str(tmp_path / "scores.jsonl"), "--no-progress", "--flush-every", "5", "--flush-every-s", "0.3",
        "backend=openai", f"base_url={base_url}", "model=loopback-judge", "max_concurrency=4", "backoff_base_s=0.005",
    ]  # fmt: skip


def wait_for_answers(server, count: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while len(server.stats()["answered_hashes"]) < count:
        assert process.poll() is None, f"judge score exited early:\n{process.communicate()[0]}"
        assert time.time() < deadline, f"fewer than {count} answers within {timeout_s} s"
        time.sleep(0.05)


@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_killed_run_keeps_every_answer_it_received(tmp_path, judge_server, kill):
    """The server answers 23 calls and then holds the rest. The run is killed (SIGTERM: it flushes on the way out;
    SIGKILL: nothing runs, so the periodic flush must already have written them). The rerun asks the server
    nothing it already answered, and completes."""
    write_candidates(tmp_path / "candidates.jsonl", count=6)  # 4 candidates each: 2 x 4 + 1 = 9 calls per video
    server = judge_server(FaultPlan(latency_ms=20, hold_after_answers=ANSWERED_BEFORE_HOLD))
    command = score_command(tmp_path, server.base_url)
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_answers(server, ANSWERED_BEFORE_HOLD, process)
        time.sleep(1.0)  # > --flush-every-s: for SIGKILL, the periodic flush has run with nothing left pending
        process.send_signal(kill)
        output = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            process.kill()
    if kill == signal.SIGTERM:
        assert process.returncode == 143 and "answers are kept in" in output, output
    assert not (tmp_path / "scores.jsonl").exists()  # nothing half-written
    answered_first = server.stats()["answered_hashes"]
    assert len(answered_first) == ANSWERED_BEFORE_HOLD

    server.set_faults(FaultPlan(latency_ms=20))
    server.reset()
    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    answered_again = server.stats()["answered_hashes"]
    assert not set(answered_again) & set(answered_first)  # nothing received before was paid for twice
    assert len(answered_again) == 54 - ANSWERED_BEFORE_HOLD and max(Counter(answered_again).values()) == 1
    rows = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and sum(row["cache_hits"] for row in rows) == ANSWERED_BEFORE_HOLD


def test_a_judge_that_is_down_stops_the_run_with_the_endpoint_and_the_first_error(tmp_path, capsys):
    """Nothing listens on the port: every call fails (connection refused). The command exits 2 naming the endpoint
    and the error, before judging every video, and writes no scores file."""
    write_candidates(tmp_path / "candidates.jsonl", count=6)
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    argv = [
        "judge", "score", "--input", str(tmp_path / "candidates.jsonl"), "--out", str(tmp_path / "scores.jsonl"), "--no-progress",
        "backend=openai", f"base_url={base_url}", "model=loopback-judge", "max_retries=1", "backoff_base_s=0.001",
        "max_videos_in_flight=1",
    ]  # fmt: skip
    from synpo.cli.main import main

    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0, error  # one line, no traceback
    assert f"judge 'loopback-judge' at {base_url} failed" in error and "first error: connection error" in error
    assert "of 27 calls" in error  # stopped after 3 videos (the first check at >= 20 calls), not after 54
    assert not (tmp_path / "scores.jsonl").exists()


def test_failures_below_the_threshold_do_not_stop_the_run(tmp_path, judge_server):
    write_candidates(tmp_path / "candidates.jsonl", count=3)
    server = judge_server(FaultPlan(rate_500=0.3, seed=5))
    argv = [
        "judge", "score", "--input", str(tmp_path / "candidates.jsonl"), "--out", str(tmp_path / "scores.jsonl"), "--no-progress",
        "backend=openai", f"base_url={server.base_url}", "model=loopback-judge", "max_retries=0", "max_failed_fraction=0.6",
    ]  # fmt: skip
    assert run_cli(argv) == 0
    rows = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert 0 < sum(row["failed_calls"] for row in rows) < 0.6 * sum(row["calls"] for row in rows)


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_a_bad_out_is_refused_before_any_call(tmp_path, judge_server, capsys, where):
    write_candidates(tmp_path / "candidates.jsonl", count=2)
    server = judge_server()
    (tmp_path / "a_file").write_text("x")
    out = {"folder": tmp_path, "under_a_file": tmp_path / "a_file" / "scores.jsonl"}[where]
    argv = [
        "judge", "score", "--input", str(tmp_path / "candidates.jsonl"), "--out", str(out), "--no-progress",
        "backend=openai", f"base_url={server.base_url}", "model=loopback-judge",
    ]  # fmt: skip
    from synpo.cli.main import main

    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("synpo judge: error: --out = ") and "\n" not in error
    assert server.stats()["requests"] == 0
