"""Building the toy model never leaves a half-built folder that a job would use.

A build writes into a temporary sibling under a file lock and renames it into place; the jobs
(``prepare_model`` of pair generation, ``validate_before_ray`` of training) resolve their model with
``synpo.models.resolve_model``: ``toy://`` builds into the model cache and refuses a cache folder
without the recipe marker; a local folder must be a complete model.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synpo.cli.main import main
from synpo.errors import ModelNotFound
from synpo.pairgen.config import PairsConfig
from synpo.pairgen.pipeline import prepare_model
from synpo.pairs import write_pairs
from synpo.sampling.engine import EngineSettings
from synpo.toy.model import RECIPE_FILE, build_tiny_model
from synpo.training.config import OptimSettings, ScalingSettings, TrainConfig
from synpo.training.ray_job import validate_before_ray

WARM_START_STEPS = 10  # enough to be killed in the middle of; the rebuild stays short


def leftovers(parent: Path) -> list[str]:
    """Temporary build or trash folders beside the model."""
    return sorted(path.name for path in parent.iterdir() if ".partial-" in path.name or ".trash-" in path.name)


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(temp)}


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory, toy_pair_rows) -> Path:
    path = tmp_path_factory.mktemp("model_build_pairs") / "pairs.parquet"
    write_pairs(toy_pair_rows, str(path))
    return path


@pytest.fixture(params=["pairs", "train"])
def job_check(request, pairs_file):
    """The model check of one job, run through that job's own entry: ``check(model)``."""

    def check(model: Path | str) -> None:
        if request.param == "pairs":
            prepare_model(PairsConfig(engine=EngineSettings(model=str(model))))
        else:
            validate_before_ray(
                TrainConfig(
                    pairs=str(pairs_file), model=str(model),
                    optim=OptimSettings(effective_batch_size=1, micro_batch_size=1), scaling=ScalingSettings(num_workers=1),
                )
            )

    return check


@pytest.mark.slow
def test_a_killed_build_leaves_nothing_a_job_would_use(tmp_path):
    out = tmp_path / "models" / "tiny-vlm"
    env = subprocess_env(tmp_path)
    command = [sys.executable, "-m", "synpo.cli.main", "toy", "model", "--out", str(out), "--kind", "vlm", "--warm-start-steps", str(WARM_START_STEPS)]
    builder = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(Path(env["TMPDIR"]).glob("synpo-warmstart-*")):  # the warm start's own work folder: it is running
        assert builder.poll() is None, "the build ended before its warm start was seen"
        assert time.monotonic() < deadline, "no warm start within 120 s"
        time.sleep(0.02)
    builder.kill()
    builder.wait()

    assert not (out / RECIPE_FILE).exists()
    assert not (out / "config.json").exists()  # the random weights never reached the model folder
    with pytest.raises(ModelNotFound, match="no model folder there"):
        prepare_model(PairsConfig(engine=EngineSettings(model=str(out))))

    assert build_tiny_model(out, kind="vlm", warm_start_steps=WARM_START_STEPS) == out  # the same recipe builds it completely
    assert (out / "synpo_warm_start.json").is_file() and (out / "model.safetensors").is_file()
    assert (out / RECIPE_FILE).is_file()
    assert leftovers(out.parent) == []  # the killed builder's temporary folder is gone too
    prepare_model(PairsConfig(engine=EngineSettings(model=str(out))))  # used as it is


CONCURRENT_BUILD = """
import sys, time
from pathlib import Path
from synpo.toy.model import RECIPE_FILE, build_tiny_model
out, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():  # both processes call the build at the same moment
    time.sleep(0.005)
build_tiny_model(out, kind="text")
print((out / RECIPE_FILE).stat().st_mtime_ns, (out / "model.safetensors").stat().st_mtime_ns)
"""


@pytest.mark.slow
def test_two_builders_of_one_folder_build_it_once(tmp_path):
    out = tmp_path / "models" / "tiny-text"
    go = tmp_path / "go"
    ready = [tmp_path / "ready-0", tmp_path / "ready-1"]
    env = subprocess_env(tmp_path)
    builders = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_BUILD, str(out), str(flag), str(go)], env=env, stdout=subprocess.PIPE, text=True)
        for flag in ready
    ]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready):
        assert all(builder.poll() is None for builder in builders) and time.monotonic() < deadline
        time.sleep(0.02)
    go.touch()
    outputs = [builder.communicate(timeout=120)[0] for builder in builders]

    assert [builder.returncode for builder in builders] == [0, 0]
    stamps = [output.splitlines()[-1] for output in outputs]  # the script's print is the last line
    final = f"{(out / RECIPE_FILE).stat().st_mtime_ns} {(out / 'model.safetensors').stat().st_mtime_ns}"
    assert stamps == [final, final]  # one built it; the other waited, then returned that model untouched
    assert {"config.json", "model.safetensors", "tokenizer.json", RECIPE_FILE} <= {path.name for path in out.iterdir()}
    assert leftovers(out.parent) == []


def test_a_half_built_folder_is_refused_then_rebuilt_with_force(tmp_path, capsys):
    out = build_tiny_model(tmp_path / "tiny-text", kind="text")
    (out / RECIPE_FILE).unlink()  # what the old in-place build left when it was interrupted
    with pytest.raises(ModelNotFound) as refused:
        build_tiny_model(out, kind="text")
    assert str(out) in str(refused.value) and "no finished toy model" in str(refused.value) and "--force" in str(refused.value)
    assert main(["toy", "model", "--out", str(out), "--kind", "text"]) == 2
    assert "synpo toy model --force" in capsys.readouterr().err

    assert main(["toy", "model", "--out", str(out), "--kind", "text", "--force"]) == 0
    assert (out / RECIPE_FILE).is_file()
    assert leftovers(out.parent) == []


def test_jobs_refuse_a_half_built_toy_model_in_the_cache(tmp_path, tiny_text_lm, job_check, monkeypatch):
    monkeypatch.setenv("SYNPO_MODEL_CACHE", str(tmp_path / "cache"))
    half_built = tmp_path / "cache" / "toy" / "tiny-text"
    shutil.copytree(tiny_text_lm, half_built)
    (half_built / RECIPE_FILE).unlink()  # what the old in-place build left when it was interrupted
    with pytest.raises(ModelNotFound, match="holds no finished toy model") as refused:
        job_check("toy://tiny-text")
    assert str(half_built) in str(refused.value) and "--force" in str(refused.value)
    assert not (half_built / RECIPE_FILE).exists()  # refused, not rebuilt over


def test_jobs_refuse_a_model_folder_without_weights(tmp_path, tiny_text_lm, job_check):
    half_written = tmp_path / "my-model"
    half_written.mkdir()
    shutil.copy(tiny_text_lm / "config.json", half_written)
    with pytest.raises(ModelNotFound, match="config.json but no weights") as refused:
        job_check(half_written)
    assert str(half_written) in str(refused.value)


def test_jobs_accept_a_finished_toy_model_and_a_complete_user_model(tmp_path, tiny_text_lm, job_check):
    stamp = (tiny_text_lm / "model.safetensors").stat().st_mtime_ns
    job_check(tiny_text_lm)  # a finished toy model given as a folder: used, not rebuilt
    assert (tiny_text_lm / "model.safetensors").stat().st_mtime_ns == stamp
    user_model = tmp_path / "my-model"
    shutil.copytree(tiny_text_lm, user_model)
    (user_model / RECIPE_FILE).unlink()
    job_check(user_model)


def test_each_family_is_its_own_recipe(tmp_path, capsys):
    """A Qwen2.5-VL build is a Qwen2.5-VL model with its own processor, and a folder of one family is rebuilt
    (never reused) when another family is asked for; a text model or an unknown family is refused by name."""
    from transformers import AutoConfig, AutoProcessor

    from synpo.errors import BadArgument
    from synpo.toy.model import is_built, toy_recipe

    out = tmp_path / "tiny"
    assert main(["toy", "model", "--out", str(out), "--family", "qwen2.5-vl", "--warm-start-steps", "0"]) == 0
    assert "(qwen2.5-vl)" in capsys.readouterr().out
    assert AutoConfig.from_pretrained(out).model_type == "qwen2_5_vl"
    assert type(AutoProcessor.from_pretrained(out)).__name__ == "Qwen2_5_VLProcessor"
    assert toy_recipe(out)["family"] == "qwen2.5-vl" and is_built(out, "vlm", 0, family="qwen2.5-vl") and not is_built(out, "vlm", 0)
    build_tiny_model(out)  # the default family: a different recipe, so rebuilt in place
    assert AutoConfig.from_pretrained(out).model_type == "qwen2_vl" and "family" not in toy_recipe(out)
    with pytest.raises(BadArgument, match="unknown model family 'llava'"):
        build_tiny_model(tmp_path / "x", family="llava")
    with pytest.raises(BadArgument, match="family='qwen2.5-vl' is a video VLM"):
        build_tiny_model(tmp_path / "y", kind="text", family="qwen2.5-vl")


def test_a_vlm_built_from_the_command_line_captions_by_default_a_text_lm_is_not_trained():
    """The README's ``synpo toy model --out DIR`` gives the warm-started VLM the jobs' toy://tiny-vlm is, not random weights."""
    from synpo.cli.main import build_parser
    from synpo.cli.toy import warm_start_steps
    from synpo.models import TOY_MODELS

    parse = build_parser().parse_args
    assert warm_start_steps(parse(["toy", "model", "--out", "m"])) == TOY_MODELS["tiny-vlm"][1] == 300
    assert warm_start_steps(parse(["toy", "model", "--out", "m", "--kind", "text"])) == 0
    assert warm_start_steps(parse(["toy", "model", "--out", "m", "--warm-start-steps", "0"])) == 0
