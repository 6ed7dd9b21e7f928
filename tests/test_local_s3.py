"""``make s3-local``: the README's recipe for trying s3:// on one machine serves a bucket that synpo reads and writes."""

from __future__ import annotations

import signal
import subprocess
import sys

from synpo.storage import Storage, StorageConfig
from synpo.testing.loopback_server import free_port


def test_the_local_s3_server_prints_its_variables_serves_the_bucket_and_stops_on_sigterm(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "synpo.testing.local_s3", "--port", str(port), "--bucket", "demo"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout.readline().startswith(f"S3 on http://127.0.0.1:{port} with bucket s3://demo/")
        exported = server.stdout.readline().removeprefix("export ").split()
        variables = dict(item.split("=", 1) for item in exported)
        config = StorageConfig(
            endpoint_url=variables["AWS_ENDPOINT_URL"], region=variables["AWS_REGION"],
            access_key_id=variables["AWS_ACCESS_KEY_ID"], secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip
        storage = Storage(config)
        storage.write_text("s3://demo/toy/a.txt", "hello")
        assert storage.list("s3://demo/toy") == ["s3://demo/toy/a.txt"] and storage.read_text("s3://demo/toy/a.txt") == "hello"
        busy = subprocess.run([sys.executable, "-m", "synpo.testing.local_s3", "--port", str(port)], capture_output=True, text=True, timeout=60)
        assert busy.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
