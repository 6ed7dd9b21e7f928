"""The evaluation job on a real local Ray and a real MLflow registry: a folder model and a registered
version by alias, each evaluated once (a rerun finds its run), and the errors that stop it."""

from __future__ import annotations

import json

import mlflow
import pytest

from registry_support import register_versions
from synpo.config.loader import load_config
from synpo.evaluation.config import EvalConfig
from synpo.evaluation.job import EvalError, run_eval
from synpo.training.config import LoraSettings
from synpo.training.model import add_lora, load_base

pytestmark = [pytest.mark.ray, pytest.mark.slow]
LOCAL_YAML = "jobs/configs/eval_local.yaml"


def config(tmp_path, model: str, eval_set, output: str, *overrides: str) -> EvalConfig:
    from pathlib import Path

    yaml = Path(__file__).resolve().parents[2] / LOCAL_YAML
    return load_config(
        EvalConfig, yaml,
        [f"model={model}", f"eval_set={eval_set}", f"output={tmp_path / output}", f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
         f"mlflow.artifact_location={tmp_path}/artifacts", "max_new_tokens=48", *overrides],
    )  # fmt: skip


def test_a_folder_model_is_scored_once_with_text_and_fact_metrics(ray_cluster, warm_vlm, toy_video_dir, tmp_path):
    eval_set = toy_video_dir / "manifest.jsonl"
    first = run_eval(config(tmp_path, str(warm_vlm), eval_set, "eval"), progress=False)
    assert not first.reused and first.videos == 3 and first.model == str(warm_vlm)
    metrics = first.metrics
    assert {"CIDEr", "METEOR", "BLEU-4", "ROUGE-L", "facts/precision", "facts/recall", "facts/hallucination_rate"} <= set(metrics)
    assert 0 <= metrics["facts/precision"] <= 1 and metrics["CIDEr"] >= 0
    assert metrics["facts/recall"] > 0  # the warm-started model states some true facts about toy videos
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["run_id"] == first.run_id
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(first.run_id)
    assert run.data.tags["synpo.eval.model"] == str(warm_vlm) and run.data.tags["synpo.eval.eval_set"] == first.eval_set
    artifacts = [item.path for item in mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").list_artifacts(first.run_id)]
    assert "per_video.json" in artifacts

    parts = sorted((tmp_path / "eval" / "captions").iterdir())
    again = run_eval(config(tmp_path, str(warm_vlm), eval_set, "elsewhere"), progress=False)
    assert again.reused and again.run_id == first.run_id and again.metrics == pytest.approx(first.metrics, nan_ok=True)
    assert not (tmp_path / "elsewhere").exists() and sorted((tmp_path / "eval" / "captions").iterdir()) == parts

    longer = config(tmp_path, str(warm_vlm), eval_set, "eval", "max_new_tokens=64")
    with pytest.raises(EvalError, match="holds captions of another evaluation"):
        run_eval(longer, progress=False)  # other settings: its own run, and not in this output folder


def test_a_registered_version_by_alias_is_tagged_with_its_scores(ray_cluster, warm_vlm, toy_video_dir, tmp_path):
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    adapter = tmp_path / "adapter"
    base, _ = load_base(warm_vlm)
    add_lora(base, LoraSettings(rank=4, alpha=8)).save_pretrained(adapter)
    register_versions(tracking, tmp_path / "train-artifacts", "cap", [
        {"adapter_dir": str(adapter), "base_model_dir": str(warm_vlm), "video": {"num_frames": 8, "max_side": 160}, "prompt": "Describe.", "max_new_tokens": 48}
    ])  # fmt: skip
    client = mlflow.MlflowClient(tracking)
    client.set_registered_model_alias("cap", "champion", "1")
    result = run_eval(config(tmp_path, "models:/cap@champion", toy_video_dir / "manifest.jsonl", "eval", "metrics.meteor=false"), progress=False)
    assert result.model == "models:/cap/1" and not result.reused
    tags = client.get_model_version("cap", "1").tags
    assert tags[f"eval.{result.eval_set}.run_id"] == result.run_id
    assert float(tags[f"eval.{result.eval_set}.CIDEr"]) == pytest.approx(result.metrics["CIDEr"], abs=1e-4)
    by_version = run_eval(config(tmp_path, "models:/cap/1", toy_video_dir / "manifest.jsonl", "eval2", "metrics.meteor=false"), progress=False)
    assert by_version.reused and by_version.run_id == result.run_id  # the alias was recorded as the version it named


def test_videos_that_cannot_be_captioned_stop_the_job_and_name_themselves(ray_cluster, warm_vlm, toy_video_dir, tmp_path):
    rows = [json.loads(line) for line in (toy_video_dir / "manifest.jsonl").read_text().splitlines()][:1]
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    rows.append({"id": "broken", "video": str(tmp_path / "broken.mp4"), "caption": rows[0]["caption"]})
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(EvalError, match=r"1 video\(s\) could not be captioned, e.g. \['broken'\]"):
        run_eval(config(tmp_path, str(warm_vlm), manifest, "eval", "metrics.meteor=false"), progress=False)
    assert len(list((tmp_path / "eval" / "captions").iterdir())) >= 1  # the good video's caption is kept for the rerun


def test_llm_scores_come_from_the_judge_and_an_unreachable_judge_stops_the_job_first(ray_cluster, warm_vlm, toy_video_dir, tmp_path):
    from synpo.judging.client import JudgeUnreachable
    from synpo.testing.loopback_server import FaultPlan, LoopbackJudgeServer, free_port

    llm = ["metrics.llm.scores=[detail,qa]", "metrics.meteor=false", "metrics.llm.judge.model=loopback-judge"]
    down = config(tmp_path, str(warm_vlm), toy_video_dir / "manifest.jsonl", "eval", *llm, f"metrics.llm.judge.base_url=http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(JudgeUnreachable, match="is unreachable"):
        run_eval(down, progress=False)
    assert not (tmp_path / "eval" / "captions").exists()  # stopped before any captioning
    assert mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_experiment_by_name(down.mlflow.experiment) is None  # nothing recorded

    with LoopbackJudgeServer(FaultPlan()) as server:
        result = run_eval(config(tmp_path, str(warm_vlm), toy_video_dir / "manifest.jsonl", "eval", *llm, f"metrics.llm.judge.base_url={server.base_url}"), progress=False)
        calls = server.stats()["criteria"]
    assert calls == {"detail": 3, "qa_questions": 3, "qa_answers": 3, "qa_judgements": 3}
    assert 0 <= result.metrics["llm/detail"] <= 5 and 0 <= result.metrics["llm/qa_accuracy"] <= 1 and "CIDEr" in result.metrics
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    table = json.loads(open(client.download_artifacts(result.run_id, "per_video.json", str(tmp_path))).read())
    assert {"llm_detail", "llm_qa_accuracy", "llm_qa_score", "llm_qa"} <= set(table["columns"])
    plain = run_eval(config(tmp_path, str(warm_vlm), toy_video_dir / "manifest.jsonl", "eval", "metrics.meteor=false"), progress=False)
    assert not plain.reused and "llm/detail" not in plain.metrics  # other metrics: another run, the same captions
