"""The README's cluster commands for real: `ray start --head`, then `ray job submit --working-dir . -- python jobs/…`.

The head is a Ray of its own (temp dir, ports, token auth as Ray 2.60 turns it on), started from the
venv the way a user with an activated venv starts it. Jobs are submitted from a copy of this checkout
whose synpo records every process that imports it: the submitted code must be what the driver and
every Ray worker run, never the synpo installed in the venv.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from synpo.pairgen import progress
from synpo.pairs import read_pairs
from synpo.storage import Storage
from synpo.testing.loopback_server import FaultPlan, LoopbackJudgeServer
from synpo.testing.ray_head import RayHead

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CALLS_PER_VIDEO = 3 + 3 + 1  # C1 and C2 per candidate (n=3), C3 once
IMPORT_LOG_HOOK = """
import os as _os
if _os.environ.get("SYNPO_TEST_IMPORT_LOG"):  # added by tests/jobs/test_job_submit.py to its copy of the checkout
    with open(_os.path.join(_os.environ["SYNPO_TEST_IMPORT_LOG"], str(_os.getpid())), "w") as _log:
        _log.write(__file__)
"""


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The repository's tracked files, as a fresh clone has them, with the import-recording synpo."""
    folder = tmp_path_factory.mktemp("checkout")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, folder / name)
    with open(folder / "platform/synpo/__init__.py", "a") as init:
        init.write(IMPORT_LOG_HOOK)
    return folder


@pytest.fixture(scope="module")
def head():
    with RayHead(num_cpus=4, path=[str(VENV_BIN)], ray_bin=str(VENV_BIN / "ray")) as ray_head:
        yield ray_head


def wait_for(condition, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def test_pair_job_stopped_and_resubmitted_resumes_then_training_runs_on_its_pairs(head, checkout, warm_vlm, tmp_path):
    """The judge holds after two videos' answers, so the first submission cannot finish before `ray job stop`.
    The resubmission (same output) skips what was written and completes; the training job then trains on
    those pairs and registers a model. Both jobs run the submitted checkout's synpo in every process."""
    from synpo.toy.videos import ToyVideoSpec, write_toy_videos

    videos, output, imports = tmp_path / "videos", tmp_path / "pairs-run", tmp_path / "imports"
    imports.mkdir()
    write_toy_videos(str(videos), count=5, seed=11, spec=ToyVideoSpec(max_duration_s=12), progress=False)
    runtime_env = json.dumps({"env_vars": {"SYNPO_TEST_IMPORT_LOG": str(imports)}})
    with LoopbackJudgeServer(FaultPlan(latency_ms=50, hold_after_answers=2 * CALLS_PER_VIDEO)) as judge:
        pair_job = [
            "--working-dir", ".", "--runtime-env-json", runtime_env, "--",
            "python", "jobs/generate_pairs.py", "--config", "jobs/configs/pairs_local.yaml",
            f"input={videos / 'manifest.jsonl'}", f"output={output}", f"engine.model={warm_vlm}",
            "candidates.sampling.n=3", "candidates.sampling.max_new_tokens=24", "clips.max_new_tokens=12", "judge.min_margin=0",
            "judge.backend=openai", f"judge.base_url={judge.base_url}", "judge.max_videos_in_flight=1", "judge_cache_flush_s=0.5",
            "write_batch_size=1", "engine_pool.batch_size=1", "judge_pool.batch_size=1", "mlflow.enabled=false",
        ]  # fmt: skip
        first = head.job("submit", "--submission-id", "pairs-first", "--no-wait", *pair_job, cwd=checkout)
        assert first.returncode == 0, first.stdout + first.stderr
        wait_for(lambda: len(progress.completed(str(output), Storage())) >= 1 or head.job_status("pairs-first") == "FAILED", "a first video written")
        assert head.job_status("pairs-first") == "RUNNING", head.job("logs", "pairs-first").stdout[-4000:]
        stopped = head.job("stop", "pairs-first")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        wait_for(lambda: head.job_status("pairs-first") == "STOPPED", "the first submission stopped", timeout_s=60)
        written_before = len(progress.completed(str(output), Storage()))
        assert 1 <= written_before <= 2

        judge.set_faults(FaultPlan(latency_ms=5))
        second = head.job("submit", "--submission-id", "pairs-second", *pair_job, cwd=checkout)
        assert second.returncode == 0 and head.job_status("pairs-second") == "SUCCEEDED", second.stdout[-4000:] + second.stderr[-2000:]

    summary = json.loads((output / "summary.json").read_text())
    assert summary["already_done"] == written_before and summary["processed"] == 5 - written_before
    assert sorted(progress.completed(str(output), Storage())) == sorted(f"toy-0011-0000{index}" for index in range(5))
    pair_ids = Counter(pair["video_id"] for pair in read_pairs(str(output / "pairs")))
    assert pair_ids and max(pair_ids.values()) == 1, pair_ids

    train_job = [
        "--working-dir", ".", "--runtime-env-json", runtime_env, "--",
        "python", "jobs/train.py", "--config", "jobs/configs/train_local.yaml", f"pairs={output / 'pairs'}", f"model={warm_vlm}",
        f"run.storage_path={tmp_path / 'ray'}", "run.name=submitted", "optim.epochs=1", "val_fraction=0.2",
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", f"mlflow.artifact_location={tmp_path / 'mlartifacts'}",
        "registry.model_name=submitted-captioner",
    ]  # fmt: skip
    trained = head.job("submit", "--submission-id", "train", *train_job, cwd=checkout)
    assert trained.returncode == 0 and head.job_status("train") == "SUCCEEDED", trained.stdout[-4000:] + trained.stderr[-2000:]
    result = json.loads((tmp_path / "ray" / "submitted" / "job_result.json").read_text())
    assert result["steps"] >= 1 and str(result["model_version"]) == "1"

    imported_from = {path.name: path.read_text() for path in imports.iterdir()}
    assert len(imported_from) >= 4, imported_from  # two pair drivers, a training driver, and their workers
    assert all(path.startswith(head.temp_dir) for path in imported_from.values()), imported_from
    assert any("/working_dir_files/" in path for path in imported_from.values()), imported_from  # the drivers
    assert any("/py_modules_files/" in path for path in imported_from.values()), imported_from  # the workers
