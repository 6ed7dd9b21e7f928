import json
import runpy
import shutil
from pathlib import Path

import pytest

from synpo.pairs import write_pairs

REPO = Path(__file__).resolve().parents[2]


def run_job(*arguments: str) -> int:
    module = runpy.run_path(str(REPO / "jobs" / "train.py"))
    return module["main"](list(arguments))


@pytest.mark.slow
def test_local_training_job_writes_metrics_plot_and_adapter(tmp_path, warm_vlm, toy_pair_rows, capsys):
    pairs = tmp_path / "pairs.parquet"
    write_pairs(toy_pair_rows, str(pairs))
    model = tmp_path / "model"
    shutil.copytree(warm_vlm, model)
    out = tmp_path / "out"
    code = run_job(
        "--config", str(REPO / "jobs/configs/train_local.yaml"),
        f"pairs={pairs}", f"model={model}", f"output_dir={out}", "optim.epochs=2", "val_fraction=0.25",
    )
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "loss" in row]
    assert steps and all("rewards/margin" in row and "tokens_per_s" in row for row in steps)
    assert any("grad_norm/chosen" in row for row in steps)
    assert sum("val/accuracy" in row for row in rows) == 2  # once per epoch
    assert (out / "training_curves.png").stat().st_size > 10_000
    assert (out / "best_adapter" / "adapter_config.json").is_file()
    assert json.loads((out / "summary.json").read_text())["best_epoch"] in (0, 1)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objective=ppo", "unknown objective 'ppo'"),
        ("hyperparameters={gamma: 1.0}", "objective 'synpo' has no hyperparameter(s) ['gamma']"),
        ("optim.micro_batch_size=3", "must be a multiple of micro_batch_size"),
        ("pairs=", "pairs: required"),
    ],
)
def test_bad_configs_fail_before_work(override, message, capsys):
    assert run_job("--config", str(REPO / "jobs/configs/train_local.yaml"), override) == 2
    assert message in capsys.readouterr().err


def test_missing_or_bad_pairs_fail_clearly(tmp_path, capsys):
    assert run_job("--config", str(REPO / "jobs/configs/train_local.yaml"), f"pairs={tmp_path}/none.parquet") == 2
    assert "no object at" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"pair_id": "a", "video": "v.mp4", "prompt": "p", "chosen": "x"}\n')
    assert run_job("--config", str(REPO / "jobs/configs/train_local.yaml"), f"pairs={bad}") == 2
    assert "row 0 (pair_id 'a'): field 'rejected'" in capsys.readouterr().err
