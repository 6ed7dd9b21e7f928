"""A Ray head node of its own, started the way a user starts one (`ray start --head`), for tests of `ray job submit`.

    with RayHead(num_cpus=4, path=[".venv/bin"], ray_bin=".venv/bin/ray") as head:
        head.job("submit", "--working-dir", ".", "--", "python", "jobs/train.py", ..., cwd=checkout)
        head.job_status("raysubmit_...")

Its own temp dir and free ports, token authentication on (``RAY_AUTH_MODE=token``, as a shared cluster runs)
with a token that exists only in the head's and the client's environments (nothing under ``~/.ray``).
``path`` goes first on the head's ``PATH``: a submitted job's ``python`` is whatever the head finds
there (a user who started the head from an activated venv). The head runs ``--block`` in a session of
its own; leaving the block stops that session's processes (SIGTERM, then SIGKILL), never a
machine-wide ``ray stop``.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from synpo.testing.loopback_server import free_port

PORT_FLAGS = (
    "--port", "--dashboard-port", "--ray-client-server-port", "--node-manager-port", "--object-manager-port",
    "--runtime-env-agent-port", "--dashboard-agent-grpc-port", "--dashboard-agent-listen-port", "--metrics-export-port",
)  # fmt: skip


class RayHead:
    """`ray start --head --block` in its own session; :meth:`job` runs the `ray job` CLI against it, :meth:`job_status` asks its REST API."""

    def __init__(self, num_cpus: int, path: list[str], ray_bin: str, start_timeout_s: float = 120):
        self.num_cpus = num_cpus
        self.path = [str(Path(entry).resolve()) for entry in path]
        self.ray_bin = ray_bin
        self.start_timeout_s = start_timeout_s
        self.temp_dir = tempfile.mkdtemp(prefix="rh-", dir="/tmp")  # short: Ray's socket paths live under it
        self.ports = {flag: free_port() for flag in PORT_FLAGS}
        token = secrets.token_hex(16)
        self.env = {
            **os.environ,
            "PATH": os.pathsep.join([*self.path, os.environ.get("PATH", "")]),
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": token,
        }
        self.env.pop("RAY_ADDRESS", None)
        self.process: subprocess.Popen | None = None

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['--dashboard-port']}"

    @property
    def log_file(self) -> Path:
        return Path(self.temp_dir) / "ray-start.log"

    def __enter__(self) -> RayHead:
        command = [self.ray_bin, "start", "--head", "--block", "--temp-dir", self.temp_dir, f"--num-cpus={self.num_cpus}",
                   "--include-dashboard=true", "--dashboard-host=127.0.0.1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]  # fmt: skip
        command += [f"{flag}={port}" for flag, port in self.ports.items()]
        with open(self.log_file, "w") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_for_jobs_api()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.env['RAY_AUTH_TOKEN']}"}

    def job_status(self, submission_id: str) -> str:
        """The job's status from the jobs REST API (``PENDING``, ``RUNNING``, ``STOPPED``, ``SUCCEEDED``, ``FAILED``)."""
        response = httpx.get(f"{self.dashboard_url}/api/jobs/{submission_id}", headers=self._headers, timeout=10)
        response.raise_for_status()
        return response.json()["status"]

    def _wait_for_jobs_api(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode}:\n{self.log_file.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.dashboard_url}/api/jobs/", headers=self._headers, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # the dashboard is not listening yet
            time.sleep(0.5)
        raise TimeoutError(f"the head's jobs API did not answer within {self.start_timeout_s} s:\n{self.log_file.read_text()[-3000:]}")

    def job(self, *arguments: str, cwd: Path | None = None, env: dict | None = None, timeout_s: float = 900) -> subprocess.CompletedProcess:
        """``ray job <arguments> --address <dashboard>`` as a client would run it (token in its environment)."""
        command = [self.ray_bin, "job", arguments[0], "--address", self.dashboard_url, *arguments[1:]]
        return subprocess.run(command, cwd=cwd, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout_s, check=False)

    def stop(self, grace_s: float = 20) -> None:
        """Stop every process of the head's session: SIGTERM, then SIGKILL after ``grace_s``."""
        if self.process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break  # the whole session is gone
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and _session_alive(self.process.pid):
                time.sleep(0.2)
            if not _session_alive(self.process.pid):
                break
        self.process.wait()


def _session_alive(session_id: int) -> bool:
    """Whether any process of session ``session_id`` is still running (zombies of our own child excepted)."""
    for status_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status_file.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited while we looked
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            return True
    return False
