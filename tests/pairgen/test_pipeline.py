"""The pair-generation job on a real local Ray: S3 in and out, the loopback judge server, faults, a killed actor."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pairgen_support import small_config

from synpo.pairgen import progress
from synpo.pairgen.pipeline import run_pairs
from synpo.pairs import read_pairs
from synpo.storage import Storage, join_uri
from synpo.testing.loopback_server import FaultPlan, LoopbackJudgeServer

pytestmark = [pytest.mark.ray, pytest.mark.slow]
VALID = [f"toy-0011-0000{index}" for index in range(5)]
CALLS_PER_VIDEO = 3 + 3 + 1  # C1 and C2 per candidate, C3 once


@pytest.fixture
def judge():
    with LoopbackJudgeServer(FaultPlan()) as server:
        yield server


def upload(storage: Storage, bucket: str, folder) -> str:
    """The six videos and the manifest under s3://bucket/videos/; returns the manifest URI."""
    for path in sorted(folder.iterdir()):
        if path.suffix in (".mp4", ".jsonl"):
            storage.write_bytes(f"s3://{bucket}/videos/{path.name}", path.read_bytes())
    return f"s3://{bucket}/videos/all.jsonl"


def table(storage: Storage, output: str, name: str) -> list[dict]:
    return pa.concat_tables([pq.read_table(pa.BufferReader(storage.read_bytes(uri))) for uri in storage.list(join_uri(output, name))]).to_pylist()


def storage_overrides(storage: Storage) -> list[str]:
    settings = storage.config
    return [f"storage.endpoint_url={settings.endpoint_url}", "storage.region=us-east-1", "storage.access_key_id=testing", "storage.secret_access_key=testing"]


def test_s3_to_s3_with_a_corrupt_video_then_a_rerun_that_does_nothing(ray_cluster, s3_storage, pair_videos, warm_vlm, judge, tmp_path):
    import mlflow

    storage, bucket = s3_storage
    manifest = upload(storage, bucket, pair_videos)
    output = f"s3://{bucket}/pairs-run"
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    config = small_config(
        warm_vlm, manifest, output, "judge.backend=openai", f"judge.base_url={judge.base_url}", *storage_overrides(storage),
        "mlflow.enabled=true", f"mlflow.tracking_uri={tracking}", "mlflow.run_name=s3-run",
    )  # fmt: skip
    summary = run_pairs(config, progress=False)
    assert (summary.videos_in, summary.paired, summary.failed) == (6, 5, 1)
    assert summary.failed_by_reason == {"decode: VideoError": 1}
    assert summary.judge_calls == judge.stats()["requests"] == 5 * CALLS_PER_VIDEO
    assert sorted(pair["video_id"] for pair in read_pairs(f"{output}/pairs", storage)) == VALID
    failures = table(storage, output, "failures")
    assert [(row["video_id"], row["stage"]) for row in failures] == [("broken", "decode")] and "broken.mp4" in failures[0]["reason"]
    audit = table(storage, output, "audit")
    assert len(audit) == 5 * 3 and all(row["c1"] is not None and row["c2"] is not None and row["c3"] is not None for row in audit)
    assert sorted(row["role"] for row in audit if row["role"]) == ["chosen"] * 5 + ["rejected"] * 5
    assert storage.exists(f"{output}/summary.json")
    (run,) = mlflow.MlflowClient(tracking).search_runs(
        [mlflow.MlflowClient(tracking).get_experiment_by_name("synpo-pairs-local").experiment_id], "attributes.run_name = 's3-run'"
    )
    assert run.data.metrics["paired"] == 5 and run.data.metrics["failed/decode_VideoError"] == 1
    assert run.data.params["judge.backend"] == "openai" and run.data.params["output"] == output
    assert "testing" not in json.dumps(run.data.params)  # no storage credentials in MLflow

    again = run_pairs(config, progress=False)
    assert (again.already_done, again.processed) == (6, 0)
    assert judge.stats()["requests"] == 5 * CALLS_PER_VIDEO  # nothing judged twice


def test_judge_faults_at_40_percent_lose_nothing(ray_cluster, pair_videos, warm_vlm, tmp_path):
    """10% each of 429, 500, timeout and malformed: over the ~70 requests of the run every kind is served (a kind
    is missed with probability ~4 x 0.9^70 < 0.3%, whatever the request bodies hash to), and every call ends answered."""
    faults = FaultPlan(rate_429=0.1, rate_500=0.1, rate_timeout=0.1, rate_malformed=0.1, hang_s=3.0, retry_after_s=0.05, seed=7)
    with LoopbackJudgeServer(faults) as server:
        config = small_config(
            warm_vlm, str(pair_videos / "all.jsonl"), str(tmp_path / "out"),
            "judge.backend=openai", f"judge.base_url={server.base_url}", "judge.timeout_s=1.0",
            "judge.backoff_base_s=0.05", "judge.backoff_max_s=0.2", "judge.max_retries=8", "judge.max_malformed_retries=3",
        )  # fmt: skip
        summary = run_pairs(config, progress=False)
        served = server.stats()["faults_served"]
    assert all(served.get(kind, 0) > 0 for kind in ("429", "500", "timeout", "malformed")), served
    assert (summary.paired, summary.failed, summary.judge_failed_calls) == (5, 1, 0)  # every fault retried to an answer
    statuses = progress.completed(config.output, Storage())
    assert sorted(statuses) == sorted([*VALID, "broken"])


def _engine_actors(alive: bool = True) -> list[dict]:
    """Ray Data's actors that hold a SampleStage (from the GCS; this test cluster runs no dashboard)."""
    from ray._private import state

    actors = [actor for actor in state.actors().values() if "SampleStage" in actor["ActorClassName"]]
    return [actor for actor in actors if actor["State"] == "ALIVE" or not alive]


def test_an_engine_actor_killed_mid_run_is_restarted_without_losing_or_repeating_rows(ray_cluster, pair_videos, warm_vlm, tmp_path):
    config = small_config(warm_vlm, str(pair_videos / "all.jsonl"), str(tmp_path / "out"), "write_batch_size=1", "engine_pool.batch_size=1")
    marker_dir = tmp_path / "out" / "_progress"
    killed: list[int] = []

    def kill_once_a_video_is_written() -> None:
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            pid = next((actor["Pid"] for actor in _engine_actors()), None)
            written = len(list(marker_dir.glob("*.json"))) if marker_dir.is_dir() else 0
            if pid and written:
                os.kill(pid, signal.SIGKILL)
                killed.append(written)
            time.sleep(0.2)

    killer = threading.Thread(target=kill_once_a_video_is_written, daemon=True)
    killer.start()
    summary = run_pairs(config, progress=False)
    killer.join(timeout=5)
    assert killed and killed[0] < 6, f"the engine actor was not killed mid-run (videos written when killed: {killed})"
    assert summary.processed == 6 and summary.paired == 5
    assert any(actor["NumRestarts"] >= 1 for actor in _engine_actors(alive=False))  # Ray restarted it; Ray Data retried its batch
    statuses = progress.completed(config.output, Storage())
    assert sorted(statuses) == sorted([*VALID, "broken"])  # every video exactly once (completed() rejects repeats)
    pairs = read_pairs(str(tmp_path / "out" / "pairs"))
    assert sorted(pair["video_id"] for pair in pairs) == VALID


def test_decoding_runs_in_cpu_tasks_of_its_own_never_fused_into_the_engine_actors(ray_cluster, pair_videos, warm_vlm, tmp_path):
    """Equal CPU requests on both stages (what made Ray fuse them): the plan still runs decode as its own operator."""
    from synpo.pairgen.pipeline import build_plan
    from synpo.video.manifest import read_inputs

    config = small_config(
        warm_vlm, str(pair_videos / "manifest.jsonl"), str(tmp_path / "out"), "judge.backend=rules", "limit=2",
        "decode_num_cpus=0.5", "engine_pool.num_cpus=0.5", "engine_pool.max_actors=1",
    ).with_absolute_paths()  # fmt: skip
    storage = Storage(config.storage)
    videos = [video.to_dict() for video in read_inputs(config.input, storage, config.prompt, config.limit)]
    dataset = build_plan(config, videos, storage)
    written = sum(batch.num_rows for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None))
    operators = [line.split(":")[0] for line in dataset.stats().splitlines() if line.startswith("Operator ")]
    assert written == 2
    assert "Operator 1 MapBatches(DecodeStage)" in operators, operators
    assert "Operator 2 MapBatches(SampleStage)" in operators, operators
    assert not any("->" in name for name in operators), operators
