"""Node types and node loss on a multi-node Ray cluster on this machine (its own processes: see multinode_run.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synpo.pairs import write_pairs

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1500)
def test_custom_resources_place_engines_and_workers_and_a_lost_train_node_resumes_from_checkpoint(warm_vlm, tmp_path):
    """12 training pairs, 2 workers x micro-batch 2 = 3 steps an epoch, 2 epochs: 6 steps whatever the interruption."""
    from synpo.toy.pairs import toy_pairs
    from synpo.toy.videos import ToyVideoSpec, write_toy_videos

    write_toy_videos(str(tmp_path / "videos"), count=16, seed=21, spec=ToyVideoSpec(max_duration_s=15), progress=False)
    write_pairs(toy_pairs(str(tmp_path / "videos")), str(tmp_path / "pairs.parquet"))
    paths = {"model": str(warm_vlm), "videos": str(tmp_path / "videos" / "manifest.jsonl"), "pairs": str(tmp_path / "pairs.parquet"), "root": str(tmp_path)}
    script = REPO / "tests" / "training" / "multinode_run.py"
    completed = subprocess.run([sys.executable, str(script), json.dumps(paths)], cwd=REPO, capture_output=True, text=True, timeout=1400, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    result = json.loads(next(line for line in completed.stdout.splitlines() if line.startswith("RESULT ")).removeprefix("RESULT "))

    assert "replacer_error" not in result, result["replacer_error"]
    assert result["engine_nodes"] == [result["sample_node"]] and result["pairs_processed"] == 2
    removed = result["removed_node"]
    (spare,) = set(result["train_nodes"]) - {removed}
    placements = result["train_worker_nodes"]
    assert placements[0] == [removed] and placements[-1] == [spare], placements  # never on the head or the sample node
    resumed_from = max(result["checkpoints_at_removal"])
    assert resumed_from >= 2
    assert result["steps"] == 6 and str(result["model_version"]) == "1"
    # resumed, not restarted: the steps up to the registered checkpoint were trained (and logged) once
    assert set(result["loss_steps"]) == {1, 2, 3, 4, 5, 6}, result["loss_steps"]
    assert all(result["loss_steps"].count(step) == 1 for step in range(1, resumed_from + 1)), (resumed_from, result["loss_steps"])
