"""Pair generation whose judge is down stops with a clear error, and the rerun judges those videos again.
Bad output locations are refused before any work."""

from __future__ import annotations

import runpy

import pytest
from pairgen_support import LOCAL_YAML, REPO, small_overrides

from synpo.pairgen import progress
from synpo.pairs import read_pairs
from synpo.storage import Storage
from synpo.testing.loopback_server import LoopbackJudgeServer, free_port

VALID = [f"toy-0011-0000{index}" for index in range(5)]


def run_job(*overrides: str) -> int:
    return runpy.run_path(str(REPO / "jobs" / "generate_pairs.py"))["main"](["--config", str(LOCAL_YAML), *overrides])


@pytest.mark.ray
@pytest.mark.slow
def test_a_judge_that_is_down_stops_the_job_and_the_rerun_judges_those_videos(ray_cluster, pair_videos, warm_vlm, tmp_path, capsys):
    port = free_port()
    output = tmp_path / "out"
    judge = ["judge.backend=openai", f"judge.base_url=http://127.0.0.1:{port}/v1", "judge.max_retries=0", "judge.model=loopback-judge"]
    overrides = small_overrides(warm_vlm, str(pair_videos / "all.jsonl"), str(output), *judge)

    assert run_job(*overrides) == 2  # nothing listens on the port: every call is refused
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"generate_pairs: error: judge 'loopback-judge' at http://127.0.0.1:{port}/v1 failed ")
    assert "first error: fewer than two judged candidates" in error and "connection error" in error
    written = progress.completed(str(output), Storage())
    assert written and all(status == "failed" for status in written.values())  # recorded, and marked to be judged again
    assert Storage().exists(f"{output}/summary.json")

    with LoopbackJudgeServer(port=port) as server:
        assert run_job(*overrides) == 0
        assert server.stats()["requests"] == 7 * 5  # every valid video judged once: 3 candidates -> 2 x 3 + 1 calls
    statuses = progress.completed(str(output), Storage())
    assert sorted(statuses) == sorted([*VALID, "broken"])  # every video exactly once
    assert statuses["broken"] == "failed" and all(statuses[video_id] == "paired" for video_id in VALID)
    assert sorted(pair["video_id"] for pair in read_pairs(f"{output}/pairs")) == VALID


@pytest.mark.parametrize("where", ["a_file", "under_a_file"])
def test_an_output_that_cannot_be_a_folder_is_refused_before_any_work(pair_videos, tmp_path, capsys, where):
    (tmp_path / "a_file").write_text("not a folder")
    output = {"a_file": tmp_path / "a_file", "under_a_file": tmp_path / "a_file" / "out"}[where]
    assert run_job(*small_overrides(tmp_path / "no-model", str(pair_videos / "all.jsonl"), str(output))) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"generate_pairs: error: output = '{output}'") and "\n" not in error
    assert (tmp_path / "a_file").read_text() == "not a folder"
