"""The README's local commands, verbatim and in order, in a fresh folder: a new user's first hour.

Every ``.venv/bin/...`` line of the README's ``bash`` blocks (continuation lines joined), its
``export`` lines and ``make s3-local`` (started in the background, as the README says: in a shell of
its own) run with ``bash`` in a temporary folder that links the checkout's ``.venv``, ``jobs`` and
``serve`` but has ``runs/`` of its own. What is not run, and why, is in :data:`NOT_RUN`; a README
line that is neither run nor listed fails the test, so a new command cannot slip past it.

The one preparation: ``runs/models/tiny-vlm`` is seeded with the toy://tiny-vlm build of the model
cache (the same recipe, which ``synpo toy model`` then finds built instead of training it again).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from synpo.models import resolve_model
from synpo.testing.loopback_server import free_port

REPO = Path(__file__).resolve().parents[1]
NOT_RUN = {
    "make demo": "runs the whole loop for minutes; its steps are tested one by one",
    "make test": "is CI itself",
    "make vllm-venv": "the vLLM suite (tests/vllm_cpu) builds and uses it",
    ".venv/bin/python jobs/generate_pairs.py --config jobs/configs/pairs_vllm_cpu.yaml": "runs in tests/vllm_cpu/test_vllm_pair_job.py",
}
CLUSTER = re.compile(r"^(ray |RAY_AUTH_MODE=token ray |source |kubectl |serve run |curl |export SYNPO_SERVE_TOKEN|export RAY_AUTH_MODE)")


def readme_commands() -> list[str]:
    """The shell lines of the README's ``bash`` blocks, continuation lines joined, comments and blanks dropped; not
    the block of HTTP requests to a running Serve deployment (tests/serving sends those)."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    commands = []
    for block in blocks:
        if re.search(r"^curl ", block, flags=re.M):
            continue  # requests to a running Serve deployment (tests/serving sends them)
        for command in re.sub(r"\\\n\s*", "", block).splitlines():
            command = command.strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def local_commands() -> list[str]:
    chosen = []
    for command in readme_commands():
        if CLUSTER.match(command) or any(command.startswith(prefix) for prefix in NOT_RUN):
            continue
        assert command.startswith((".venv/bin/", "export ", "make s3-local")), f"a README command neither run nor excluded: {command}"
        chosen.append(command)
    return chosen


def test_the_list_holds_every_section_in_order():
    commands = [command.split("#")[0].split()[:3] for command in local_commands()]
    assert [" ".join(words[:2]) for words in commands][:3] == [".venv/bin/synpo toy", ".venv/bin/synpo toy", ".venv/bin/synpo caption"]
    assert sum(".venv/bin/python jobs/train.py" in command for command in local_commands()) == 1
    assert any("s3://bucket/toy" in command for command in local_commands())
    assert local_commands()[-1].startswith(".venv/bin/synpo judge score")


@pytest.mark.slow
def test_the_readmes_local_commands_run_in_order_in_a_fresh_folder(tmp_path):
    for name in (".venv", "jobs", "serve", "Makefile", "platform", "pyproject.toml", "requirements.lock"):
        (tmp_path / name).symlink_to(REPO / name)
    toy_model = resolve_model("toy://tiny-vlm")  # built once per machine; the serving tests use it too
    shutil.copytree(toy_model, tmp_path / "runs" / "models" / "tiny-vlm")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "MAKE", "MFLAGS"))}
    env |= {"HF_HUB_OFFLINE": "1", "SYNPO_LOG_DIR": str(tmp_path / "runs" / "logs"), "S3_PORT": str(free_port())}
    server = None
    script = ["set -euo pipefail"]
    for command in local_commands():
        if command.startswith("make s3-local"):
            script.append(f"make --no-print-directory s3-local > {tmp_path}/s3.log 2>&1 & echo $! > {tmp_path}/s3.pid")
            script.append(f"until grep -q '^export ' {tmp_path}/s3.log; do sleep 0.5; done")
            continue
        command = command.replace("127.0.0.1:9000", "127.0.0.1:$S3_PORT")  # the README's port, moved off a port another run may hold
        script.append(f"echo \">>> $(date +%s.%N | cut -c1-14) {command.replace(chr(39), '').replace(chr(34), '')}\"")
        script.append(command)
    started = time.monotonic()
    try:
        result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    finally:
        if (tmp_path / "s3.pid").exists():
            server = int((tmp_path / "s3.pid").read_text())
            subprocess.run(["pkill", "-TERM", "-P", str(server)], check=False)
    ran = re.findall(r"^>>> \S+ (.*)$", result.stdout, flags=re.M)
    assert result.returncode == 0, f"failed at: {ran[-1] if ran else '(start)'}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    stamps = [float(stamp) for stamp in re.findall(r"^>>> (\S+) ", result.stdout, flags=re.M)] + [time.time()]
    took = "\n".join(f"  {end - start:5.1f} s  {command[:100]}" for command, start, end in zip(ran, stamps, stamps[1:], strict=False))
    print(f"{len(ran)} README commands in {time.monotonic() - started:.0f} s:\n{took}")
    out = result.stdout
    assert "ready at runs/models/tiny-vlm" in out
    s3_caption = re.search(r"^>>> \S+ \S+synpo caption [^\n]*s3://bucket/toy/[^\n]*\n(.*?)^>>> ", out, flags=re.M | re.S)
    assert s3_caption and re.search(r"[a-z]{3,} [a-z]{3,}", s3_caption.group(1)), out[:3000]  # words of a caption, read from S3
    assert re.search(r"pairs: [1-9]\d* in \S*runs/generated/pairs/", out)  # so does the local one: the example model poisoned nothing
    assert out.count("done: ") == 1 and "registered synpo-captioner-local version 1" in out
    assert re.search(r"wrote \S*runs/generated/report.html: [1-9]\d* pairs with judge audit", out)
    assert re.search(r"judged 8 videos with rules judge", out)
    assert not (tmp_path / "mlruns").exists() and not list(tmp_path.glob("*.jsonl"))  # every output under runs/
