"""An MLflow server that goes away mid-run does not stop training: rank 0's step logger queues what it could
not send, says so, and sends it when the server is back, every step kept with its number.

A real ``mlflow server`` on loopback, stopped and started again on the same port and store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import pytest

from synpo.testing.loopback_server import free_port
from synpo.training.worker import MlflowStepLogger

pytestmark = pytest.mark.slow


def start(root: Path, port: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--default-artifact-root", str(root / "artifacts"), "--workers", "1"]  # fmt: skip
    server = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, "mlflow server did not come up"
        time.sleep(0.3)


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


def test_steps_logged_while_the_server_is_down_arrive_when_it_is_back(tmp_path, capsys):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start(tmp_path, port)
    try:
        run_id = mlflow.MlflowClient(url).create_run(mlflow.MlflowClient(url).create_experiment("hiccup")).info.run_id
        logger = MlflowStepLogger(url, run_id, world=2)
        logger({"loss": 1.0, "pairs_per_s": 3.0}, 1)
        stop(server)
        logger({"loss": 0.9, "pairs_per_s": 3.0}, 2)  # no exception: the step goes on
        logger({"loss": 0.8, "pairs_per_s": 3.0}, 3)
        out = capsys.readouterr().out
        # each row: loss, pairs_per_s and pairs_per_s_all_workers
        assert out.count("warning: MLflow logging failed") == 2 and "3 metric values queued" in out and "6 metric values queued" in out
        assert "step 2 loss=0.9000" in out and "step 3 loss=0.8000" in out
        assert len(logger.queued) == 6
        server = start(tmp_path, port)
        logger({"loss": 0.7, "pairs_per_s": 3.0}, 4)
        assert "MLflow logging is back" in capsys.readouterr().out and logger.queued == []
        history = mlflow.MlflowClient(url).get_metric_history(run_id, "loss")
        assert sorted((metric.step, metric.value) for metric in history) == [(1, 1.0), (2, 0.9), (3, 0.8), (4, 0.7)]
        assert len(mlflow.MlflowClient(url).get_metric_history(run_id, "pairs_per_s_all_workers")) == 4
    finally:
        if server.poll() is None:
            stop(server)
