from pathlib import Path

import pydantic
import pytest
import yaml

from synpo.cli.caption import CaptionConfig
from synpo.cli.config_cmd import JOB_CONFIGS
from synpo.config.base import StrictModel
from synpo.config.loader import ConfigError, load_config, parse_override
from synpo.config.render import render_config


class Inner(StrictModel):
    rate: float = pydantic.Field(default=0.5, gt=0, le=1, description="a rate")
    mode: str = pydantic.Field(default="a", pattern="^(a|b)$", description="a mode")


class Outer(StrictModel):
    name: str = pydantic.Field(default="x", description="a name")
    count: int = pydantic.Field(default=3, ge=1, description="a count")
    inner: Inner = pydantic.Field(default_factory=Inner, description="nested")


def test_defaults_yaml_and_overrides_compose(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("name: from-yaml\ninner:\n  rate: 0.25\n")
    config = load_config(Outer, path, ["count=7", "inner.mode=b"])
    assert (config.name, config.count, config.inner.rate, config.inner.mode) == ("from-yaml", 7, 0.25, "b")


def test_override_values_are_parsed_as_yaml():
    assert parse_override("a.b=4") == (["a", "b"], 4)
    assert parse_override("flag=true") == (["flag"], True)
    assert parse_override("ids=[1, 2]") == (["ids"], [1, 2])
    assert parse_override("name=hello world") == (["name"], "hello world")
    assert parse_override("empty=") == (["empty"], None)


@pytest.mark.parametrize("override", ["novalue", "=3", "a..b=1"])
def test_malformed_overrides_are_rejected(override):
    with pytest.raises(ConfigError, match="override"):
        parse_override(override)


def test_unknown_override_key_names_the_key_and_the_allowed_ones():
    with pytest.raises(ConfigError) as error:
        load_config(Outer, None, ["inner.speed=3"])
    message = str(error.value)
    assert "'speed'" in message and "'inner'" in message and "mode, rate" in message


def test_unknown_yaml_key_fails_naming_it(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("inner:\n  rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"inner\.rat = 0\.1: unknown key"):
        load_config(Outer, path)


def test_bad_value_names_field_value_and_rule():
    with pytest.raises(ConfigError) as error:
        load_config(Outer, None, ["inner.rate=1.5", "count=zero"])
    message = str(error.value)
    assert "inner.rate = 1.5: Input should be less than or equal to 1" in message
    assert "count = 'zero': Input should be a valid integer" in message


def test_override_into_plain_value_is_rejected():
    with pytest.raises(ConfigError, match="'name' is a plain value"):
        load_config(Outer, None, ["name.first=a"])


def test_missing_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "nope.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(Outer, listing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Outer, broken)


def test_render_shows_every_field_with_help_and_default():
    text = render_config(load_config(Outer, None, ["count=9"]))
    assert "# a count (default: 3)\ncount: 9" in text
    assert "  # a rate (default: 0.5)\n  rate: 0.5" in text


def test_every_job_config_renders_and_secrets_stay_hidden():
    for job, model in JOB_CONFIGS.items():
        text = render_config(model())
        assert text.count("# ") >= len(model.model_fields), job
    config = load_config(CaptionConfig, None, ["storage.secret_access_key=hunter2"])
    rendered = render_config(config)
    assert "hunter2" not in rendered and "**********" in rendered


def test_every_shipped_job_yaml_loads_with_its_jobs_config():
    """jobs/configs/<job>[_variant].yaml is a valid config of <job> (pairs, train, eval, judge)."""
    folder = Path(__file__).resolve().parents[2] / "jobs" / "configs"
    checked = []
    for path in sorted(folder.glob("*.yaml")):
        job = path.stem.split("_")[0]
        job = {"pairs": "pairs", "train": "train", "eval": "eval", "judge": "judge", "promote": "promote", "replicate": "replicate"}[job]
        load_config(JOB_CONFIGS[job], path, [])
        checked.append(path.name)
    assert {"eval.yaml", "eval_local.yaml", "pairs_vllm_cpu.yaml", "promote.yaml", "promote_local.yaml", "replicate.yaml"} <= set(checked)


PRESETS = Path(__file__).resolve().parents[2] / "jobs" / "configs" / "models"


@pytest.mark.parametrize("preset", sorted(PRESETS.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_model_preset_lays_over_each_cluster_config(preset):
    """Each preset's section is valid over the job's cluster config; its values win, the rest of the job file stays."""
    folder = PRESETS.parent
    pairs = load_config(JOB_CONFIGS["pairs"], folder / "pairs.yaml", [], preset=preset, section="pairs")
    train = load_config(JOB_CONFIGS["train"], folder / "train.yaml", ["max_response_tokens=512"], preset=preset, section="train")
    evaluation = load_config(JOB_CONFIGS["eval"], folder / "eval.yaml", [], preset=preset, section="eval")
    sections = yaml.safe_load(preset.read_text())
    assert pairs.engine.model == sections["pairs"]["engine"]["model"] == train.model
    assert pairs.judge.backend == "openai" and pairs.engine.vllm.gpu_memory_utilization == 0.9  # kept from pairs.yaml
    assert pairs.engine.vllm.max_model_len == sections["pairs"]["engine"]["vllm"]["max_model_len"]
    assert train.max_response_tokens == 512 and train.lora.rank == sections["train"]["lora"]["rank"]  # overrides come last
    assert evaluation.video.num_frames == sections["eval"]["video"]["num_frames"]
    assert {"qwen2-vl-7b", "qwen2.5-vl-7b", "qwen3-vl-8b", "llava-onevision-7b"} <= {path.stem for path in PRESETS.glob("*.yaml")}


def test_a_bad_preset_is_refused_by_name(tmp_path):
    preset = tmp_path / "m.yaml"
    preset.write_text("train: {model: /m}\nserve: {}\n")
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['serve'\]"):
        load_config(JOB_CONFIGS["train"], None, [], preset=preset, section="train")
    preset.write_text("pairs: {engine: {model: /m}}\n")
    with pytest.raises(ConfigError, match="has no 'train' section"):
        load_config(JOB_CONFIGS["train"], None, [], preset=preset, section="train")
    preset.write_text("train: {model: /m, lora: {rnak: 8}}\n")
    with pytest.raises(ConfigError, match=r"(?s)m\.yaml\[train\].*lora\.rnak = 8: unknown key"):
        load_config(JOB_CONFIGS["train"], None, [], preset=preset, section="train")


@pytest.mark.parametrize("job", ["pairs", "eval"])
def test_a_vllm_model_split_over_other_gpus_than_its_actor_holds_is_refused(job):
    folder = PRESETS.parent
    load_config(JOB_CONFIGS[job], folder / f"{job}.yaml", [])  # the shipped cluster config: 1 GPU, tensor_parallel_size 1
    with pytest.raises(ConfigError, match=r"tensor_parallel_size \(2\) must equal engine_pool.num_gpus \(1\)"):
        load_config(JOB_CONFIGS[job], folder / f"{job}.yaml", ["engine.vllm.tensor_parallel_size=2"])
    config = load_config(JOB_CONFIGS[job], folder / f"{job}.yaml", ["engine.vllm.tensor_parallel_size=2", "engine_pool.num_gpus=2"])
    assert config.engine.vllm.tensor_parallel_size == 2
