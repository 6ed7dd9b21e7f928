"""The training job on a real local Ray cluster (2 CPU workers, DeepSpeed, gloo) with a real MLflow store."""

import json
import os
import runpy
import shutil
import signal
import threading
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from synpo.config.loader import load_config
from synpo.pairs import read_pairs, write_pairs
from synpo.storage import Storage
from synpo.testing.train_checkpoints import registered_checkpoint_steps
from synpo.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
LOCAL_CONFIG = REPO / "jobs/configs/train_local.yaml"


def run_job_cli(*arguments: str) -> int:
    return runpy.run_path(str(REPO / "jobs" / "train.py"))["main"](list(arguments))


@pytest.fixture(scope="module")
def job_setup(tmp_path_factory, warm_vlm):
    """16 known-answer pairs (12 train, 4 validation), a private copy of the warm VLM, private MLflow/Ray storage."""
    from synpo.toy.pairs import toy_pairs
    from synpo.toy.videos import ToyVideoSpec, write_toy_videos

    root = tmp_path_factory.mktemp("train_job")
    write_toy_videos(str(root / "videos"), count=16, seed=21, spec=ToyVideoSpec(max_duration_s=15), progress=False)
    write_pairs(toy_pairs(str(root / "videos")), str(root / "pairs.parquet"))
    shutil.copytree(warm_vlm, root / "model")
    overrides = [
        f"pairs={root / 'pairs.parquet'}",
        f"model={root / 'model'}",
        f"run.storage_path={root / 'ray'}",
        f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        f"mlflow.artifact_location={root / 'mlartifacts'}",
        "mlflow.experiment=tests",
        "registry.model_name=tiny-captioner",
        "val_fraction=0.25",
    ]
    return root, overrides


def run_training(overrides):
    from synpo.training.ray_job import run_training as run

    return run(load_config(TrainConfig, LOCAL_CONFIG, overrides))


@pytest.fixture(scope="module")
def zero2_run(job_setup, ray_cluster):
    root, overrides = job_setup
    return run_training([*overrides, "run.name=zero2"])


def final_state(root: Path, run_id: str, tracking: str) -> dict:
    client = mlflow.MlflowClient(tracking)
    return json.loads(Path(client.download_artifacts(run_id, "trainer_state.json", str(root / f"dl-{run_id}"))).read_text())


@pytest.mark.slow
@pytest.mark.ray
def test_two_workers_zero2_track_and_register_a_model_that_captions(job_setup, zero2_run):
    root, _ = job_setup
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking)
    run = client.get_run(zero2_run.mlflow_run_id)
    assert run.info.status == "FINISHED" and zero2_run.steps == 6  # 12 pairs / (2 workers x 2) = 3 steps x 2 epochs
    assert run.data.params["deepspeed.zero_stage"] == "2" and run.data.params["objective"] == "synpo"
    losses = client.get_metric_history(zero2_run.mlflow_run_id, "loss")
    assert sorted(metric.step for metric in losses) == [1, 2, 3, 4, 5, 6]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracy", "grad_norm/chosen", "val/accuracy", "val/nll_chosen", "tokens_per_s"):
        assert key in run.data.metrics, key
    artifacts = {item.path for item in client.list_artifacts(zero2_run.mlflow_run_id)}
    assert {"training_curves.png", "config.yaml", "trainer_state.json"} <= artifacts
    version = client.get_model_version("tiny-captioner", zero2_run.model_version)
    assert version.tags["objective"] == "synpo" and version.tags["run_id"] == zero2_run.mlflow_run_id
    assert version.tags["pairs"].endswith("pairs.parquet") and version.tags["git_commit"]
    mlflow.set_tracking_uri(tracking)
    model = mlflow.pyfunc.load_model(f"models:/tiny-captioner/{zero2_run.model_version}")
    video = str(root / "videos" / "toy-0021-00000.mp4")
    (caption,) = model.predict(pd.DataFrame({"video": [video]}))
    assert isinstance(caption, str) and caption.strip()


def _train_worker_pids() -> list[int]:
    """PIDs of live Ray Train worker processes (Ray titles them ``ray::RayTrainWorker...``)."""
    import psutil

    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if command.startswith("ray::RayTrainWorker"):
            pids.append(process.info["pid"])
    return pids


def _kill_a_worker_after_checkpoints(storage: Path, count: int, killed: list[tuple[int, int]]) -> None:
    deadline = time.time() + 240
    while time.time() < deadline:
        registered = registered_checkpoint_steps(storage)  # registered, not just written: see synpo.testing.train_checkpoints
        if len(registered) >= count:
            pids = _train_worker_pids()
            if pids:
                os.kill(pids[-1], signal.SIGKILL)
                killed.append((pids[-1], max(registered)))
                return
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.ray
def test_killed_worker_resumes_from_checkpoint_and_matches_uninterrupted_run(job_setup, zero2_run):
    """Tolerance: final validation loss and accuracy within 1e-4 of the uninterrupted run with the same seed."""
    root, overrides = job_setup
    killed: list[tuple[int, int]] = []  # (pid, the latest registered checkpoint step at the kill)
    watcher = threading.Thread(target=_kill_a_worker_after_checkpoints, args=(root / "ray" / "faulty", 2, killed))
    watcher.start()
    result = run_training([*overrides, "run.name=faulty", "run.checkpoint_every_steps=1", "run.max_failures=2"])
    watcher.join()
    assert killed, "no worker was killed: the run finished before its second checkpoint"
    (_, resumed_from), = killed
    loss_steps = [metric.step for metric in mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_metric_history(result.mlflow_run_id, "loss")]
    assert all(loss_steps.count(step) == 1 for step in range(1, resumed_from + 1)), (resumed_from, loss_steps)  # resumed, not restarted
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    interrupted, baseline = final_state(root, result.mlflow_run_id, tracking), final_state(root, zero2_run.mlflow_run_id, tracking)
    assert interrupted["steps"] == baseline["steps"] == 6
    last = {key: value for key, value in interrupted["history"][-1].items()}
    reference = baseline["history"][-1]
    assert last["val/loss"] == pytest.approx(reference["val/loss"], abs=1e-4)
    assert last["val/accuracy"] == pytest.approx(reference["val/accuracy"], abs=1e-4)
    # 8 checkpoints were taken (every step, and at both epoch ends); run.keep_checkpoints=2 keeps the two validated epoch
    # ends (the best of them holds the registered adapter) and the latest, which is the second of them
    run_folder = root / "ray" / "faulty"
    assert sorted(registered_checkpoint_steps(run_folder)) == [3, 6] and len([folder for folder in run_folder.glob("checkpoint_*") if folder.is_dir()]) == 2
    assert Path(result.best_adapter).is_dir() and Path(result.checkpoint_path).is_dir()


@pytest.mark.slow
@pytest.mark.ray
def test_rerun_with_the_same_name_continues_at_the_next_epoch_then_is_finished(job_setup, ray_cluster, capsys):
    """Longer: continues. Same again: finished, nothing trained or registered. Another objective: refused before Ray."""
    root, overrides = job_setup
    same = [*overrides, "run.name=resumable", "registry.model_name=resumable-captioner"]
    first = run_training([*same, "optim.epochs=1"])
    assert first.steps == 3 and str(first.model_version) == "1"
    second = run_training([*same, "optim.epochs=2"])
    assert second.steps == 6 and second.mlflow_run_id == first.mlflow_run_id and str(second.model_version) == "2"
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    steps = [metric.step for metric in client.get_metric_history(first.mlflow_run_id, "loss")]
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]  # epoch 2 ran once, epoch 1 was not repeated
    assert "optim.epochs=2" in client.get_run(first.mlflow_run_id).data.tags["synpo.changed_on_rerun"]
    tags = client.get_model_version("resumable-captioner", "2").tags
    assert tags["objective"] == "synpo" and tags["pairs"] == str(root / "pairs.parquet") and len(tags["pairs_digest"]) == 16

    assert run_job_cli("--config", str(LOCAL_CONFIG), *same, "optim.epochs=2") == 0
    assert "had already finished with these settings: nothing trained, nothing registered" in capsys.readouterr().out
    assert [version.version for version in client.search_model_versions("name = 'resumable-captioner'")] == [2, 1]
    assert len(client.get_metric_history(first.mlflow_run_id, "loss")) == 6

    assert run_job_cli("--config", str(LOCAL_CONFIG), *same, "optim.epochs=2", "objective=dpo") == 2
    assert "was trained with other settings" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.ray
def test_zero3_runs(job_setup, ray_cluster):
    _, overrides = job_setup
    result = run_training([*overrides, "run.name=zero3", "deepspeed.zero_stage=3", "optim.epochs=1", "registry.model_name=null"])
    assert result.steps == 3


@pytest.mark.slow
@pytest.mark.ray
def test_a_nan_loss_stops_every_worker_once_and_the_job_is_not_retried(job_setup, ray_cluster, capsys):
    """A corrupt precomputed reference (NaN) on one pair: both workers stop together at that step, the job
    exits 2 naming the pair, the MLflow run is FAILED with the reason, nothing is registered, and Ray Train
    does not restart the group (max_failures=2 would replay the steps: no step is logged twice)."""
    root, overrides = job_setup
    rows = [{**row, "ref_chosen_logp": -30.0, "ref_rejected_logp": -30.0} for row in read_pairs(str(root / "pairs.parquet"), Storage())]
    poisoned = rows[0]["pair_id"]
    rows[0]["ref_chosen_logp"] = float("nan")
    write_pairs(rows, str(root / "poisoned.parquet"))
    arguments = [*overrides, f"pairs={root / 'poisoned.parquet'}", "objective=dpo", "reference=precomputed", "run.name=nan-stop",
                 "run.max_failures=2", "optim.epochs=1", "val_fraction=0", "registry.model_name=nan-captioner"]  # fmt: skip
    assert run_job_cli("--config", str(LOCAL_CONFIG), *arguments) == 2
    error = capsys.readouterr().err
    assert f"loss nan from pairs ['{poisoned}']" in error and "Training stopped on every worker" in error
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id], "tags.`synpo.run_name` = 'nan-stop'")
    assert run.info.status == "FAILED" and poisoned in run.data.tags["synpo.stopped"]
    steps = [metric.step for metric in client.get_metric_history(run.info.run_id, "loss")]
    assert len(steps) == len(set(steps)) and str(max(steps, default=0) + 1) in error.split("optimizer step ")[1].split()[0]
    assert not client.search_registered_models("name = 'nan-captioner'")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objective=ppo", "unknown objective 'ppo'"),
        ("deepspeed.zero_stage=4", "ZeRO stage must be one of 0, 1, 2, 3, got 4"),
        ("hyperparameters={gamma: 1.0}", "objective 'synpo' has no hyperparameter(s) ['gamma']"),
        ("optim.micro_batch_size=3", "must be a multiple of micro_batch_size"),
        ("optim.effective_batch_size=6", "micro_batch_size x num_workers"),
        ("pairs=", "pairs: required"),
    ],
)
def test_bad_configs_fail_before_ray_starts(override, message, capsys):
    assert run_job_cli("--config", str(LOCAL_CONFIG), override) == 2
    assert message in capsys.readouterr().err


def test_missing_empty_or_bad_pairs_fail_clearly(tmp_path, capsys):
    assert run_job_cli("--config", str(LOCAL_CONFIG), f"pairs={tmp_path}/none.parquet") == 2
    assert "no object at" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert run_job_cli("--config", str(LOCAL_CONFIG), f"pairs={empty}") == 2
    assert "no pairs (the dataset is empty)" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"pair_id": "a", "video": "v.mp4", "prompt": "p", "chosen": "x"}\n')
    assert run_job_cli("--config", str(LOCAL_CONFIG), f"pairs={bad}") == 2
    assert "row 0 (pair_id 'a'): field 'rejected'" in capsys.readouterr().err
    unpaired = tmp_path / "generated"  # a pair-generation output that paired nothing has no pairs/ folder
    unpaired.mkdir()
    (unpaired / "summary.json").write_text("{}")
    for pairs in (unpaired, unpaired / "pairs"):
        assert run_job_cli("--config", str(LOCAL_CONFIG), f"pairs={pairs}") == 2
        assert f"pairs = '{pairs}': 0 pairs there" in capsys.readouterr().err
