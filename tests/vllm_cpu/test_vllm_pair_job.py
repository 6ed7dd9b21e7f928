"""The pair job with engine.kind=vllm as the cluster runs it: the driver and every stage but sampling in synpo's
venv (.venv, no vLLM), the engine actors in vLLM's (this .venv-vllm, through engine_pool.python: Ray's
py_executable); jobs/configs/pairs_vllm_cpu.yaml on a local Ray, 4 toy videos (one corrupt); then the same
command again, which finds every video done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synpo.pairs import read_pairs

pytestmark = [pytest.mark.vllm, pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
VIDEOS = ["toy-0003-00000", "toy-0003-00001", "toy-0003-00002"]
MAIN_PYTHON = REPO / ".venv" / "bin" / "python"  # synpo's own venv (no vLLM): the driver, decoding, judging and writing run there


def run_job(tiny_vlm: Path, input_dir: Path, output: Path, tracking: str) -> dict:
    command = [
        str(MAIN_PYTHON), "jobs/generate_pairs.py", "--config", "jobs/configs/pairs_vllm_cpu.yaml",
        f"input={input_dir}", f"output={output}", f"engine.model={tiny_vlm}", f"mlflow.tracking_uri={tracking}",
        f"engine_pool.python={sys.executable}",  # the engine actors in the vLLM venv, as the cluster image's /opt/vllm
        "candidates.sampling.n=3", "candidates.sampling.max_new_tokens=24", "clips.max_new_tokens=12", "judge.min_margin=0",
    ]  # fmt: skip
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    done = subprocess.run(command, cwd=REPO, env={**environment, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return json.loads((output / "summary.json").read_text())


def test_pairs_from_vllm_with_a_corrupt_video_then_a_rerun_that_does_nothing(tiny_vlm, toy_videos, tmp_path):
    import mlflow
    import pyarrow.parquet as pq

    input_dir = tmp_path / "videos"
    input_dir.mkdir()
    for name in VIDEOS:
        (input_dir / f"{name}.mp4").write_bytes((toy_videos[0].parent / f"{name}.mp4").read_bytes())
    whole = (input_dir / f"{VIDEOS[1]}.mp4").read_bytes()
    (input_dir / "broken.mp4").write_bytes(whole[: len(whole) // 3])
    output, tracking = tmp_path / "out", f"sqlite:///{tmp_path}/mlflow.db"

    summary = run_job(tiny_vlm, input_dir, output, tracking)
    assert (summary["videos_in"], summary["paired"], summary["failed"]) == (4, 3, 1)
    assert summary["failed_by_reason"] == {"decode: VideoError": 1}
    pairs = read_pairs(str(output / "pairs"))
    assert sorted(pair["video_id"] for pair in pairs) == VIDEOS
    assert all(pair["generator"] == "tiny-vlm" and pair["chosen"] and pair["rejected"] for pair in pairs)
    audit = pq.read_table(output / "audit").to_pylist()
    assert len(audit) == 3 * 3 and all(row["first_pass"] for row in audit)  # retrospection: each candidate refined from a first pass
    clip_captions = [json.loads(row["clip_captions"]) for row in pq.read_table(output / "videos").to_pylist() if row["status"] == "paired"]
    assert len(clip_captions) == 3 and all(captions and all(captions) for captions in clip_captions)  # the judge's C1 references, by vLLM
    failures = pq.read_table(output / "failures").to_pylist()
    assert [(row["video_id"], row["stage"]) for row in failures] == [("broken", "decode")]
    client = mlflow.MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("synpo-pairs-vllm-cpu").experiment_id])
    assert run.data.metrics["paired"] == 3 and run.data.params["engine.kind"] == "vllm"

    again = run_job(tiny_vlm, input_dir, output, tracking)
    assert (again["already_done"], again["processed"], again["generated_tokens"]) == (4, 0, 0)
    assert sorted(pair["pair_id"] for pair in read_pairs(str(output / "pairs"))) == sorted(pair["pair_id"] for pair in pairs)
