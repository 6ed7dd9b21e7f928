"""The shared MLflow server recipe (docs/mlflow-server.md), for real: ``mlflow server`` with a SQL backend
(sqlite here, PostgreSQL on a cluster) and artifacts proxied to S3 (a moto server on loopback).

Only the server holds S3 credentials and the endpoint. The training job tracks and registers through it
over HTTP, evaluation and serving load the registered version from it; the model's files are in the
bucket and nowhere on local disk but the loaders' download caches. A client that wrote artifacts itself
fails here: it has neither the endpoint nor keys, and the bucket would not hold the files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import mlflow
import pytest
import yaml

from synpo.config.loader import load_config
from synpo.pairs import write_pairs
from synpo.testing.loopback_server import free_port
from synpo.training.config import TrainConfig

pytestmark = [pytest.mark.slow, pytest.mark.ray]

REPO = Path(__file__).resolve().parents[2]
BUCKET = "mlflow-server-test"
DESTINATION = f"s3://{BUCKET}/mlartifacts"
MODEL_NAME = "server-captioner"
# What only the server may have: a client holding any of these could write to S3 behind the server's back.
S3_CLIENT_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
TEST_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def manifest_allowed_hosts() -> str:
    """The Host headers infra/kuberay/mlflow-server.yaml lets through (the test server allows the same, plus its own)."""
    deployment = next(yaml.safe_load_all((REPO / "infra/kuberay/mlflow-server.yaml").read_text()))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (flag,) = [argument for argument in container["args"] if argument.startswith("--allowed-hosts=")]
    return flag.removeprefix("--allowed-hosts=")


def bucket_keys(s3_endpoint: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    return [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET) for item in page.get("Contents", [])]


def bucket_object(s3_endpoint: str, key: str) -> bytes:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def start_server(root: Path, s3_endpoint: str) -> tuple[subprocess.Popen, str]:
    """``mlflow server`` as docs/mlflow-server.md runs it, on a free loopback port; returns it and its URL once /health answers."""
    port = free_port()
    (root / "server").mkdir()  # its working directory: a local default (./mlartifacts, ./mlruns) would land here
    environment = {**os.environ, **TEST_KEYS, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'server' / 'mlflow.db'}", "--artifacts-destination", DESTINATION,
        "--workers", "1", "--allowed-hosts", f"{manifest_allowed_hosts()},127.0.0.1:{port}",
    ]  # fmt: skip
    with open(root / "server.log", "wb") as log:  # the server writes to its own copy of the descriptor
        server = subprocess.Popen(command, cwd=root / "server", env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(f"mlflow server did not come up on {url}:\n{(root / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM to its process group (the CLI and its uvicorn workers); SIGKILL if it lingers."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_endpoint):
    """(root, server URL): the bucket, the server, and a client side without S3 credentials or endpoint."""
    root = tmp_path_factory.mktemp("mlflow_server")
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(
        Bucket=BUCKET
    )
    previous_tracking_uri = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        for name in (*S3_CLIENT_VARIABLES, "MLFLOW_TRACKING_URI"):
            patch.delenv(name, raising=False)
        process, url = start_server(root, s3_endpoint)
        try:
            yield root, url
        finally:
            stop_server(process)
            mlflow.set_tracking_uri(previous_tracking_uri)


@pytest.fixture(scope="module")
def trained(server, warm_vlm, ray_cluster):
    """The training job (2 CPU workers, 8 pairs: 6 to train on for 1 epoch, 1 step) tracking and registering through the server."""
    from synpo.toy.pairs import toy_pairs
    from synpo.toy.videos import ToyVideoSpec, write_toy_videos
    from synpo.training.ray_job import run_training

    root, url = server
    write_toy_videos(str(root / "videos"), count=8, seed=5, spec=ToyVideoSpec(max_duration_s=8), progress=False)
    write_pairs(toy_pairs(str(root / "videos")), str(root / "pairs.parquet"))
    shutil.copytree(warm_vlm, root / "model")
    overrides = [
        f"pairs={root / 'pairs.parquet'}", f"model={root / 'model'}", f"run.storage_path={root / 'ray'}",
        f"mlflow.tracking_uri={url}", "mlflow.experiment=via-server", f"registry.model_name={MODEL_NAME}",
        "run.name=via-server", "val_fraction=0.25", "optim.epochs=1",
    ]  # fmt: skip
    return run_training(load_config(TrainConfig, REPO / "jobs/configs/train_local.yaml", overrides))


def local_artifact_stores(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name in ("mlruns", "mlartifacts")]


def test_the_jobs_have_no_s3_credentials_or_endpoint(server, ray_cluster):
    @ray_cluster.remote
    def s3_variables() -> list[str]:
        return [name for name in S3_CLIENT_VARIABLES if name in os.environ]

    assert [name for name in S3_CLIENT_VARIABLES if name in os.environ] == []  # the driver (this process)
    assert ray_cluster.get(s3_variables.remote()) == []  # the Ray workers that train and caption


def test_the_manifests_allowed_hosts_let_the_configs_tracking_uri_through(server):
    """The configs name http://mlflow.internal:5000: clients send that Host header, which MLflow refuses unless allowed."""
    _, url = server
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(search, headers={"Host": "mlflow.internal:5000"}).status_code == 200
    assert httpx.get(search, headers={"Host": "attacker.example:5000"}).status_code == 403


def test_training_tracks_and_registers_through_the_server_with_artifacts_in_the_bucket(server, trained, s3_endpoint):
    root, url = server
    client = mlflow.MlflowClient(url)
    run = client.get_run(trained.mlflow_run_id)
    assert run.info.status == "FINISHED" and trained.steps == 1
    assert run.data.params["objective"] == "synpo" and run.data.params["optim.epochs"] == "1"
    assert {"loss", "rewards/accuracy", "val/accuracy"} <= set(run.data.metrics)
    assert run.info.artifact_uri == f"mlflow-artifacts:/{run.info.experiment_id}/{run.info.run_id}/artifacts"  # the server's proxy

    version = client.get_model_version(MODEL_NAME, trained.model_version)
    assert version.run_id == trained.mlflow_run_id and version.tags["objective"] == "synpo"
    model_uri = client.get_model_version_download_uri(MODEL_NAME, trained.model_version)
    assert model_uri.startswith("mlflow-artifacts:/")
    model_prefix = "mlartifacts/" + model_uri.removeprefix("mlflow-artifacts:/").strip("/") + "/"
    run_prefix = f"mlartifacts/{run.info.experiment_id}/{run.info.run_id}/artifacts/"
    keys = set(bucket_keys(s3_endpoint))
    assert {run_prefix + name for name in ("config.yaml", "trainer_state.json", "training_curves.png")} <= keys
    model_files = {key.removeprefix(model_prefix) for key in keys if key.startswith(model_prefix)}
    flavor = yaml.safe_load(bucket_object(s3_endpoint, model_prefix + "MLmodel"))["flavors"]["python_function"]
    adapter, base = flavor["artifacts"]["adapter"]["path"], flavor["artifacts"]["base_model"]["path"]  # train_local.yaml bundles the base
    assert {f"{adapter}/adapter_config.json", f"{adapter}/adapter_model.safetensors", f"{base}/config.json"} <= model_files
    assert local_artifact_stores(root) == [] and not list(root.rglob("MLmodel"))  # nothing written beside the bucket


def test_evaluation_scores_the_registered_version_loaded_from_the_server(server, trained, s3_endpoint, ray_cluster):
    from synpo.evaluation.config import EvalConfig
    from synpo.evaluation.job import run_eval

    root, url = server
    rows = [json.loads(line) for line in (root / "videos" / "manifest.jsonl").read_text().splitlines()][:2]
    (root / "eval.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    mlflow.set_tracking_uri(f"sqlite:///{root / 'decoy.db'}")  # the job must use its configured server, not the process default
    config = load_config(
        EvalConfig, REPO / "jobs/configs/eval_local.yaml",
        [f"model=models:/{MODEL_NAME}/{trained.model_version}", f"eval_set={root / 'eval.jsonl'}", f"output={root / 'eval'}",
         f"mlflow.tracking_uri={url}", "max_new_tokens=32", "metrics.meteor=false"],
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYNPO_MODEL_CACHE", str(root / "eval-cache"))
        result = run_eval(config, progress=False)
    assert result.model == f"models:/{MODEL_NAME}/{trained.model_version}" and result.videos == 2 and "CIDEr" in result.metrics
    client = mlflow.MlflowClient(url)
    assert client.get_model_version(MODEL_NAME, trained.model_version).tags[f"eval.{result.eval_set}.run_id"] == result.run_id
    eval_run = client.get_run(result.run_id)
    assert f"mlartifacts/{eval_run.info.experiment_id}/{result.run_id}/artifacts/per_video.json" in bucket_keys(s3_endpoint)
    (downloaded,) = [folder for folder in (root / "eval-cache" / "registry" / MODEL_NAME).iterdir() if folder.is_dir()]
    model_prefix = "mlartifacts/" + client.get_model_version_download_uri(MODEL_NAME, trained.model_version).removeprefix("mlflow-artifacts:/")
    adapter = "artifacts/adapter/adapter_model.safetensors"
    assert (downloaded / adapter).read_bytes() == bucket_object(s3_endpoint, f"{model_prefix.rstrip('/')}/{adapter}")

    # A proxied root of one's own choosing: mlflow-artifacts:/PREFIX is a URI (no "//"), not a local folder.
    prefixed = config.model_copy(update={"mlflow": config.mlflow.model_copy(update={"experiment": "prefixed", "artifact_location": "mlflow-artifacts:/evals"})})
    again = run_eval(prefixed, progress=False)  # another experiment: a new run, on the captions already written
    assert client.get_experiment_by_name("prefixed").artifact_location == "mlflow-artifacts:/evals"
    assert f"mlartifacts/evals/{again.run_id}/artifacts/per_video.json" in bucket_keys(s3_endpoint)
    assert not (root / "decoy.db").exists() and local_artifact_stores(root) == []


def test_serving_loads_the_registered_version_from_the_server_and_captions(server, trained):
    from synpo.sampling.request import SamplingParams
    from synpo.serving.captioner import CaptionJob, decode_checked, load_captioner
    from synpo.serving.settings import ServeSettings

    root, url = server
    mlflow.set_tracking_uri(f"sqlite:///{root / 'decoy.db'}")
    settings = ServeSettings(model=f"models:/{MODEL_NAME}/{trained.model_version}", tracking_uri=url, engine={"kind": "hf", "device": "cpu"}, max_new_tokens=32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYNPO_MODEL_CACHE", str(root / "serve-cache"))  # a fresh cache: this load downloads from the server
        model = load_captioner(settings)
    assert model.version == trained.model_version and model.adapter is not None
    assert str(model.base_model).startswith(str(root / "serve-cache"))  # the base bundled in the version, not the training folder
    video = sorted((root / "videos").glob("*.mp4"))[0]
    frames, duration_s = decode_checked(video.read_bytes(), video.name, model.video, settings.limits)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=model.max_new_tokens)
    ((candidate,),) = model.caption([CaptionJob(frames, model.prompt, params, duration_s=duration_s)])
    assert candidate.text.strip()
    assert not (root / "decoy.db").exists() and local_artifact_stores(root) == []
