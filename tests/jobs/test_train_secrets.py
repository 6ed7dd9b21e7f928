"""The S3 secret from the YAML config reaches the Ray Train workers, and nothing the run writes holds it.

The pairs and their videos sit in a private bucket of a moto server that verifies request signatures
(``s3_signed_storage``); the key pair is given only as ``storage.*`` overrides, never in the
environment of the driver or of Ray's processes. Workers that got the JSON-masked secret
(``**********``) are refused with 403 ``SignatureDoesNotMatch``.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
import ray

from synpo.config.loader import load_config
from synpo.pairs import write_pairs
from synpo.toy.pairs import toy_pairs
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
LOCAL_CONFIG = REPO / "jobs/configs/train_local.yaml"
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@ray.remote(num_cpus=0)
def credential_variables_in_a_ray_worker() -> list[str]:
    return [name for name in CREDENTIAL_VARIABLES if name in os.environ]


def files_containing(secret: bytes, roots: list[Path]) -> list[str]:
    """Every regular file under ``roots`` whose bytes contain ``secret``."""
    return [str(path) for root in roots for path in root.rglob("*") if path.is_file() and secret in path.read_bytes()]


def ray_train_run_records() -> str:
    """Ray Train's own record of every run, ``train_loop_config`` included: what its dashboard view serves and its
    export API writes to ``logs/export_events``. Kept only with ``RAY_TRAIN_ENABLE_STATE_TRACKING=1`` (read by fit())."""
    from ray.train.v2._internal.state.state_actor import get_state_actor

    runs = ray.get(get_state_actor().get_train_runs.remote())
    return json.dumps([run.model_dump(mode="json") for run in runs.values()])


@pytest.mark.slow
@pytest.mark.ray
def test_training_reads_a_private_bucket_with_the_configs_secret_and_writes_it_nowhere(
    s3_signed_storage, ray_cluster, tiny_vlm, tmp_path, monkeypatch
):
    """The untrained tiny VLM: one optimizer step needs no warm start (``warm_vlm`` takes minutes to build here)."""
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_TRAIN_ENABLE_STATE_TRACKING", "1")
    assert ray.get(credential_variables_in_a_ray_worker.remote()) == []
    storage = s3_signed_storage
    settings = storage.config.resolved()
    key_id, secret = settings.access_key_id, settings.secret_access_key  # plain strings: pytest never shows `settings`
    storage._s3().create_bucket(Bucket="private-pairs")
    videos = "s3://private-pairs/videos"
    write_toy_videos(videos, count=6, seed=5, spec=ToyVideoSpec(max_duration_s=5), storage=storage, progress=False)
    rows = toy_pairs(videos, storage=storage)
    assert all(row["video"].startswith(f"{videos}/") for row in rows)  # the workers read every video from S3
    write_pairs(rows, "s3://private-pairs/pairs.parquet", storage)
    shutil.copytree(tiny_vlm, tmp_path / "model")
    overrides = [
        "pairs=s3://private-pairs/pairs.parquet",
        "val_fraction=0.34",  # 2 of 6 videos: 4 training pairs = one optimizer step of 2 workers x 2 pairs
        f"model={tmp_path / 'model'}",
        "optim.epochs=1",
        f"run.storage_path={tmp_path / 'ray'}",
        "run.name=private-s3",
        "run.max_failures=0",
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"mlflow.artifact_location={tmp_path / 'mlartifacts'}",
        "mlflow.experiment=tests",
        "registry.model_name=null",
        "registry.include_base_model=false",
        f"storage.endpoint_url={settings.endpoint_url}",
        "storage.region=us-east-1",
        f"storage.access_key_id={key_id}",
        f"storage.secret_access_key={secret}",
    ]
    from synpo.training.ray_job import run_training

    result = run_training(load_config(TrainConfig, LOCAL_CONFIG, overrides))

    assert result.steps == 1
    session = Path(ray._private.worker._global_node.get_session_dir_path())  # Ray's logs, spill and staging folders
    assert files_containing(secret.encode(), [tmp_path, session]) == []
    records = ray_train_run_records()
    assert key_id in records  # Ray recorded the storage entry (masked), so the next check is not vacuous
    assert records.count(secret) == 0, "the S3 secret is in Ray Train's run record"  # a count: a failure never prints it
