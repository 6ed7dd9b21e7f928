"""Shared fixtures: a real S3 endpoint on loopback, toy videos, the tiny models built offline."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The serving tests' API token: set before any Ray starts, so Serve replicas inherit it as they would a pod's secret.
os.environ.setdefault("SYNPO_TEST_SERVE_TOKEN", secrets.token_hex(16))
# The jobs' full logs (synpo.console) go under the temp folder, not the checkout's runs/logs.
os.environ.setdefault("SYNPO_LOG_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"synpo-test-logs-{os.getpid()}"))


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_storage(s3_endpoint, request):
    """A :class:`Storage` pointed at the loopback endpoint, with a fresh bucket; yields (storage, bucket)."""
    from synpo.storage import Storage, StorageConfig

    storage = Storage(
        StorageConfig(endpoint_url=s3_endpoint, region="us-east-1", access_key_id="testing", secret_access_key="testing")
    )
    bucket = "test-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40].strip("-")
    storage._s3().create_bucket(Bucket=bucket)
    return storage, bucket


AWS_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@pytest.fixture(scope="session")
def s3_signed_storage():
    """A :class:`Storage` for a second moto S3 server that verifies SigV4 signatures; its key pair exists only here.

    The ``s3_endpoint`` server accepts any signature, so a wrong secret would pass there. Moto checks
    signatures (and IAM policies) once ``INITIAL_NO_AUTH_ACTION_COUNT`` unauthenticated actions have
    been served; that setting is read when ``moto.settings`` is imported and is process-wide, hence a
    server process of its own (without AWS credentials in its environment). The first three actions
    create an IAM user, its access key and an ``s3:*`` policy; every later request must be signed
    with that key (a wrong secret gets 403 ``SignatureDoesNotMatch``).
    """
    import subprocess
    import sys
    import time

    import boto3

    from synpo.storage import Storage, StorageConfig

    port = free_port()
    environment = {name: value for name, value in os.environ.items() if name not in AWS_CREDENTIAL_VARIABLES}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**environment, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"moto server on port {port} did not start") from None
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="unused", aws_secret_access_key="unused")
        iam.create_user(UserName="trainer")
        key = iam.create_access_key(UserName="trainer")["AccessKey"]
        policy = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'
        iam.put_user_policy(UserName="trainer", PolicyName="s3-all", PolicyDocument=policy)
        yield Storage(
            StorageConfig(
                endpoint_url=endpoint, region="us-east-1", access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"]
            )
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def toy_video_dir(tmp_path_factory) -> Path:
    """Three toy videos (seed 7) with ground truth and a manifest."""
    from synpo.toy.videos import write_toy_videos

    out = tmp_path_factory.mktemp("toy_videos")
    write_toy_videos(str(out), count=3, seed=7, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    from synpo.toy.model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-vlm", kind="vlm")


@pytest.fixture(scope="session")
def tiny_text_lm(tmp_path_factory) -> Path:
    from synpo.toy.model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-text", kind="text")


@pytest.fixture(scope="session")
def warm_vlm(tmp_path_factory) -> Path:
    """The tiny VLM after a short fine-tune on toy captions (it writes caption-like text)."""
    from synpo.toy.model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "warm-vlm", kind="vlm", warm_start_steps=150)


@pytest.fixture(scope="session")
def toy_pair_rows(tmp_path_factory) -> list[dict]:
    """Known-answer pairs for 8 toy videos (seed 3)."""
    from synpo.toy.pairs import toy_pairs
    from synpo.toy.videos import ToyVideoSpec, write_toy_videos

    out = tmp_path_factory.mktemp("pair_videos")
    write_toy_videos(str(out), count=8, seed=3, spec=ToyVideoSpec(max_duration_s=20), progress=False)
    return toy_pairs(str(out))


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the session: 4 logical CPUs (2 training workers + data), no dashboard."""
    import ray

    # Ray's processes keep the environment of ray.init: none of them gets AWS credentials from the shell or a test.
    credentials = {name: os.environ.pop(name) for name in AWS_CREDENTIAL_VARIABLES if name in os.environ}
    ray.init(address="local", num_cpus=4, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    os.environ.update(credentials)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def family_vlm(tmp_path_factory, tiny_vlm):
    """``family_vlm(family) -> Path``: the tiny VLM of a family (``synpo toy model --family``), built once per session."""
    from synpo.toy.families import DEFAULT_FAMILY
    from synpo.toy.model import build_tiny_model

    root = tmp_path_factory.mktemp("family_models")
    built = {DEFAULT_FAMILY: tiny_vlm}

    def build(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_model(root / family, kind="vlm", family=family)
        return built[family]

    return build
