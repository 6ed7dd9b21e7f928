"""serve/config.yaml is a valid Ray Serve config whose application args are valid synpo ServeSettings, and
`synpo serve` starts the same app from it (or from flags) as a user runs it: a real process, real HTTP."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema
from serve_support import data_url

from synpo.cli.serve_cmd import serve_settings
from synpo.config.loader import ConfigError
from synpo.serving.settings import ServeSettings
from synpo.testing.loopback_server import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "serve" / "config.yaml"


def test_the_serve_config_is_valid_for_serve_and_for_synpo():
    raw = yaml.safe_load(CONFIG.read_text())
    config = ServeDeploySchema.model_validate(raw)
    (application,) = config.applications
    assert application.import_path == "serve.app:build"
    settings = ServeSettings.model_validate(application.args)  # unknown or misspelt keys are errors here (Serve ignores them)
    assert settings.host == config.http_options.host and settings.port == config.http_options.port
    assert settings.request_timeout_s == config.http_options.request_timeout_s
    assert settings.binds_beyond_loopback  # 0.0.0.0: the app refuses to start without a token
    options = settings.scaling.deployment_options()["ray_actor_options"]  # vLLM replicas in the image's vLLM venv
    assert settings.engine.kind == "vllm" and options["runtime_env"] == {"py_executable": "/opt/vllm/bin/python"} and options["num_gpus"] == 1
    from synpo.serving.deployment import CaptionServer  # Serve's own .options() accepts them

    assert CaptionServer.options(**settings.scaling.deployment_options()).ray_actor_options["runtime_env"]["py_executable"] == "/opt/vllm/bin/python"
    sys.path.insert(0, str(ROOT))
    try:
        from serve.app import build
    finally:
        sys.path.remove(str(ROOT))
    assert inspect.signature(build).parameters["args"].annotation in (ServeSettings, "ServeSettings")  # Serve validates args with it


def test_synpo_serve_reads_a_serve_config_and_names_bad_keys(tmp_path):
    settings = serve_settings(str(CONFIG), ["host=127.0.0.1", "scaling.max_replicas=6"])
    assert settings.model == "models:/synpo-captioner@champion" and settings.scaling.max_replicas == 6 and not settings.binds_beyond_loopback
    broken = tmp_path / "serve.yaml"
    broken.write_text(CONFIG.read_text().replace("max_ongoing_requests:", "max_ongoing_request:"))
    with pytest.raises(ConfigError, match="max_ongoing_request"):
        serve_settings(str(broken), [])


@pytest.mark.slow
def test_synpo_serve_serves_until_interrupted(toy_video_dir, tmp_path):
    port = free_port()
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled", "SYNPO_SERVE_TOKEN": "local-secret"}
    command = [
        sys.executable, "-m", "synpo.cli.main", "serve", "--model", "toy://tiny-vlm", "--port", str(port), "--num-cpus", "2",
        "engine.device=cpu", "video.num_frames=4", "video.max_side=96", "scaling.num_cpus=0.5",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read() -> None:  # every line, as it comes
        for line in process.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any(f"at http://127.0.0.1:{port}/v1" in line for line in lines):  # printed once serving (handlers set)
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="local-secret", max_retries=0, timeout=120)
        video = data_url(sorted(toy_video_dir.glob("*.mp4"))[0].read_bytes())
        reply = client.chat.completions.create(
            model="synpo-captioner", max_tokens=8, messages=[{"role": "user", "content": [{"type": "video_url", "video_url": {"url": video}}]}]
        )
        assert reply.choices[0].message.content and reply.usage.completion_tokens <= 8
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0).models.list()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
        reader.join(timeout=10)
    output = "".join(lines)
    assert process.returncode == 0 and "shutting down" in output and "local-secret" not in output, output[-3000:]
