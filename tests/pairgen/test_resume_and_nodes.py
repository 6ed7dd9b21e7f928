"""Pair generation survives its driver being killed (rerun resumes) and a worker node being removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from pairgen_support import LOCAL_YAML, REPO, small_config, small_overrides

from synpo.pairgen import progress
from synpo.pairgen.pipeline import run_pairs
from synpo.pairs import read_pairs
from synpo.storage import Storage
from synpo.testing.loopback_server import FaultPlan, LoopbackJudgeServer

pytestmark = [pytest.mark.ray, pytest.mark.slow]
VALID = [f"toy-0011-0000{index}" for index in range(5)]


def wait_for_markers(folder, count: int, process: subprocess.Popen, timeout_s: float = 300) -> int:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        written = len([path for path in folder.glob("*.json") if not path.name.startswith("_")]) if folder.is_dir() else 0
        if written >= count:
            return written
        if process.poll() is not None:
            raise AssertionError(f"the job exited ({process.returncode}) before writing {count} videos:\n{process.stdout.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"no {count} videos written within {timeout_s} s")


def test_killed_driver_then_rerun_pays_no_judgement_twice(ray_cluster, pair_videos, warm_vlm, tmp_path):
    """The judge answers 17 calls, then holds: one video at a time, 7 calls each, so two videos are judged and a
    third is left half-judged. Once a
    judged video is written the driver is killed (SIGKILL, whole process group). The rerun skips what was
    written, re-asks nothing already answered (the half-judged video's answers are in the cache), completes."""
    output = tmp_path / "out"
    with LoopbackJudgeServer(FaultPlan(latency_ms=50, hold_after_answers=17)) as server:
        judge = ["judge.backend=openai", f"judge.base_url={server.base_url}", "judge.max_concurrency=4", "judge.max_videos_in_flight=1",
                 "write_batch_size=1", "engine_pool.batch_size=1", "judge_pool.batch_size=1"]  # fmt: skip
        overrides = small_overrides(warm_vlm, str(pair_videos / "all.jsonl"), str(output), *judge)
        command = [sys.executable, "jobs/generate_pairs.py", "--config", str(LOCAL_YAML), *overrides, f"ray.address={ray_cluster.get_runtime_context().gcs_address}"]
        driver = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            wait_for_markers(output / "_progress", 2, driver)  # the corrupt video and a judged one
            while len(server.stats()["answered_hashes"]) < 17:
                time.sleep(0.1)
            time.sleep(2.0)  # > judge_cache_flush_s: every answer received is in the cache
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        time.sleep(3.0)  # Ray tears down the dead job's workers
        written_before = len(progress.completed(str(output), Storage()))
        assert 2 <= written_before <= 3  # stopped part-way: at most two judged videos and the corrupt one
        server.set_faults(FaultPlan(latency_ms=20))
        summary = run_pairs(small_config(warm_vlm, str(pair_videos / "all.jsonl"), str(output), *judge), progress=False)
        answered = server.stats()["answered_hashes"]
    assert summary.already_done == written_before and summary.processed == 6 - written_before
    repeated = [body for body, times in Counter(answered).items() if times > 1]
    assert not repeated, f"{len(repeated)} judge requests were answered twice"
    assert sorted(progress.completed(str(output), Storage())) == sorted([*VALID, "broken"])
    assert sorted(pair["video_id"] for pair in read_pairs(str(output / "pairs"))) == VALID


def test_two_nodes_spread_actors_and_survive_losing_one(pair_videos, warm_vlm, tmp_path):
    """A 2-node Ray cluster on this machine (its own processes, so run in a subprocess); see multinode_run.py."""
    overrides = small_overrides(warm_vlm, str(pair_videos / "all.jsonl"), str(tmp_path / "out"))
    script = REPO / "tests" / "pairgen" / "multinode_run.py"
    completed = subprocess.run([sys.executable, str(script), *overrides], cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert "engine_nodes_before" in result, f"the two engine actors were never alive at once: {result}"
    assert len(result["engine_nodes_before"]) == 2  # the engine actors ran on both nodes
    assert result["removed_after_videos"] < 6  # the worker node went away mid-run
    assert sorted(result["completed"]) == sorted([*VALID, "broken"])  # every video accounted for, once
    assert (result["processed"], result["paired"]) == (6, 5)
