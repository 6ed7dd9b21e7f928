"""The CLI and the job entrypoints turn the project's own errors (UserError) into one line and exit 2; any other
exception is a bug and must keep its traceback (it propagates)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from synpo.cli.main import main
from synpo.errors import UserError
from synpo.video.manifest import InputError

REPO = Path(__file__).resolve().parents[2]


def job_main(name: str):
    return runpy.run_path(str(REPO / "jobs" / f"{name}.py"))["main"]


def test_cli_user_error_is_one_line(tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text("{not json\n")
    assert main(["judge", "score", "--input", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl")]) == 2
    assert capsys.readouterr().err.strip() == f"synpo judge: error: {tmp_path / 'in.jsonl'}: line 1 is not valid JSON (Expecting property name enclosed in double quotes)"


def test_cli_programming_error_keeps_its_traceback(tmp_path, monkeypatch):
    def broken(text: str, source: str):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr("synpo.cli.judge_cmd.read_judge_inputs", broken)
    (tmp_path / "in.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="a bug, not bad input"):
        main(["judge", "score", "--input", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl")])


@pytest.mark.parametrize(
    ("job", "target", "overrides"),
    [("generate_pairs", "synpo.pairgen.pipeline.run_pairs", ["input=x", "output=y"]), ("train", "synpo.training.ray_job.run_training", ["pairs=x"])],
)
def test_jobs_print_user_errors_and_let_bugs_through(job, target, overrides, monkeypatch, capsys):
    def user_error(config):
        raise InputError("input = 'x': no videos there")

    monkeypatch.setattr(target, user_error)
    assert job_main(job)(overrides) == 2
    assert capsys.readouterr().err.strip().endswith("error: input = 'x': no videos there")

    def bug(config):
        raise KeyError("a bug")

    monkeypatch.setattr(target, bug)
    with pytest.raises(KeyError, match="a bug"):
        job_main(job)(overrides)


def test_every_error_the_edges_print_is_a_user_error():
    from synpo.config.loader import ConfigError
    from synpo.judging.failures import JudgeUnavailable
    from synpo.pairgen.progress import ResumeError
    from synpo.pairs import PairSchemaError
    from synpo.storage import ObjectNotFound, StorageError
    from synpo.video.errors import VideoError

    for error_type in (ConfigError, JudgeUnavailable, ResumeError, PairSchemaError, StorageError, ObjectNotFound, VideoError, InputError):
        assert issubclass(error_type, UserError), error_type


@pytest.mark.parametrize("command", ["export", "report", "add-reference"])
def test_pairs_commands_refuse_a_folder_as_out_before_reading_anything(tmp_path, capsys, command):
    extra = {"export": ["--format", "trl"], "report": [], "add-reference": ["--model", str(tmp_path / "no-model")]}[command]
    assert main(["pairs", command, "--pairs", str(tmp_path / "missing.parquet"), "--out", str(tmp_path), *extra]) == 2
    assert capsys.readouterr().err.strip() == f"synpo pairs: error: --out = '{tmp_path}' is an existing folder; it must be a file path"


def test_train_refuses_a_file_as_run_storage_path_before_any_work(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    overrides = [f"pairs={tmp_path / 'missing.parquet'}", f"run.storage_path={tmp_path / 'a_file'}"]
    assert job_main("train")(["--config", str(REPO / "jobs/configs/train_local.yaml"), *overrides]) == 2
    assert capsys.readouterr().err.strip() == f"train: error: run.storage_path = '{tmp_path / 'a_file'}' is an existing file; it must be a folder (or not exist yet)"
