"""``jobs/replicate.py --quick``: the whole replication, small, for real — toy videos, the base model, the pair
job on a local Ray, the oracle, every objective trained on each judge's pairs, the evaluation job, the report,
MLflow — then a rerun that reuses every finished part."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from PIL import Image
from safetensors.torch import load_file

from synpo.pairs import read_pairs
from synpo.replication.oracle import fact_f1, toy_truth
from synpo.storage import Storage

REPO = Path(__file__).resolve().parents[2]
OBJECTIVES = ("sft", "dpo", "synpo")  # the quick run here trains three of the five (each costs an evaluation); the plumbing is the same
JUDGES = ("rules", "oracle")
pytestmark = [pytest.mark.slow, pytest.mark.ray]


def replicate(output: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "jobs/replicate.py", "--config", "jobs/configs/replicate.yaml", "--quick", f"output={output}", f"objectives=[{','.join(OBJECTIVES)}]"]
    return subprocess.run(command, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=540)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("replicate")
    first = replicate(output)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-6000:]
    return output, first


def table_rows(report: str) -> list[list[str]]:
    section = report.split("## Results", 1)[1].split("\n## ", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_the_report_has_every_row_and_its_figures(quick_run):
    output, _ = quick_run
    report = (output / "replication.md").read_text()
    rows = table_rows(report)
    assert rows[0][:3] == ["–", "–", "base model (no preference training)"]
    assert [tuple(row[:3]) for row in rows[1:]] == [(judge, "0.001", f"{objective} (×1)") for judge in JUDGES for objective in OBJECTIVES]
    assert all(len(row) == 9 for row in rows)
    assert "--quick" in report and re.search(r"commit: `[0-9a-f]{40}", report)
    for judge in JUDGES:
        assert f"![curves-{judge}-lr0.001](replication/curves-{judge}-lr0.001.png)" in report
        with Image.open(output / "replication" / f"curves-{judge}-lr0.001.png") as image:
            assert image.format == "PNG" and image.width > 500
    speeds = report.split("## Training speed", 1)[1]
    assert all(f"| {objective} |" in speeds for objective in OBJECTIVES) and "**synpo / dpo**" in speeds


def test_every_objective_trained_on_each_judges_pairs(quick_run):
    output, _ = quick_run
    results = sorted(output.glob("train/*/*/result.json"))
    assert len(results) == len(JUDGES) * len(OBJECTIVES)
    for path in results:
        result = json.loads(path.read_text())
        assert [row["step"] for row in result["history"]] == [1, 2]
        assert {"loss", "nll/chosen", "nll/rejected", "rewards/margin", "pairs_per_s"} <= set(result["history"][0])
        weights = load_file(Path(result["adapter"]) / "adapter_model.safetensors")
        lora_b = [tensor for name, tensor in weights.items() if "lora_B" in name]
        assert lora_b and any(tensor.abs().sum() > 0 for tensor in lora_b), f"{path.parent.name}: LoRA B still zero, nothing trained"
        assert not any(".visual." in name for name in weights)


def test_each_judge_has_its_own_pairs_and_the_oracles_are_never_worse(quick_run):
    output, _ = quick_run
    storage = Storage()
    (pairs_folder,) = [path for path in (output / "pairs").iterdir() if path.is_dir()]
    rules = read_pairs(str(pairs_folder / "pairs"), storage)
    oracle = read_pairs(str(pairs_folder) + "-oracle.parquet", storage)
    assert rules and oracle
    assert {row["judge"] for row in oracle} == {"oracle:fact-f1"} and {row["judge"] for row in rules} != {"oracle:fact-f1"}
    for pair in oracle:
        truth = toy_truth(pair["video"], storage)
        assert fact_f1(pair["chosen"], truth) >= fact_f1(pair["rejected"], truth)


def test_every_part_is_in_mlflow(quick_run):
    output, _ = quick_run
    client = mlflow.MlflowClient(f"sqlite:///{output}/mlflow.db")
    experiment = client.get_experiment_by_name("synpo-replicate")
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    trainings = [run for run in runs if run.data.tags.get("synpo.job") == "replicate.train"]
    assert sorted((run.data.tags["synpo.judge"], run.data.tags["synpo.objective"]) for run in trainings) == sorted(
        (judge, objective) for judge in JUDGES for objective in OBJECTIVES
    )
    history = client.get_metric_history(trainings[0].info.run_id, "nll/chosen")
    assert [point.step for point in history] == [1, 2]
    assert sum(run.data.tags.get("synpo.job") == "generate_pairs" for run in runs) == 1
    evaluations = [run for run in runs if "facts/recall" in run.data.metrics]
    assert len(evaluations) == 1 + len(JUDGES) * len(OBJECTIVES)


def test_each_part_records_its_compute_time_once(quick_run):
    output, _ = quick_run
    times = json.loads((output / "timings.json").read_text())
    trained = [f"{judge}-{objective}-seed0" for judge in JUDGES for objective in OBJECTIVES]
    (recipe,) = [path.name for path in (output / "train").iterdir()]
    expected = {"base model", "eval base-ws20-seed0", "pair job", *(f"{part} {recipe}/{name}" for name in trained for part in ("train", "eval"))}
    assert set(times) == expected and all(seconds > 0 for seconds in times.values())
    assert f"compute time: {sum(times.values()) / 60:.1f} min" in (output / "replication.md").read_text()


def test_a_rerun_reuses_every_finished_part(quick_run):
    output, _ = quick_run
    before = table_rows((output / "replication.md").read_text())
    times = (output / "timings.json").read_text()
    again = replicate(output)
    assert again.returncode == 0, again.stderr[-6000:]
    log = again.stdout + again.stderr
    assert "0 to do" in log  # the pair job: every video done
    assert log.count("was evaluated already") == 1 + len(JUDGES) * len(OBJECTIVES)
    assert "warm start step" not in log and "synpo.replication.training: training" not in log
    assert table_rows((output / "replication.md").read_text()) == before
    assert (output / "timings.json").read_text() == times  # nothing was computed again
