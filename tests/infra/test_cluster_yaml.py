"""cluster.yaml is a valid Ray cluster-launcher config, and its node types fit the jobs that run on them.

Ray's checks first, the ones `ray up` makes before it talks to AWS: the JSON schema Ray ships
(``ray/autoscaler/ray-schema.json``), then ``prepare_config`` (defaults merged, docker checked,
per-type worker bounds filled in) and ``validate_config``. Then what no schema knows: the head runs
nothing, every worker type scales from zero, and the training, sampling and serving types can hold
what ``jobs/configs/train.yaml``, ``jobs/configs/pairs.yaml`` and ``serve/config.yaml`` ask for.
No Ray is started and nothing leaves the machine.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from synpo.config.loader import load_config
from synpo.evaluation.config import EvalConfig
from synpo.pairgen.config import PairsConfig
from synpo.serving.settings import ServeSettings
from synpo.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
RAY_SCHEMA = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def cluster() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def worker_types(config: dict) -> dict[str, dict]:
    head = config["head_node_type"]
    return {name: spec for name, spec in config["available_node_types"].items() if name != head}


def node_type_with(config: dict, custom_resource: str) -> dict:
    """The one worker type that offers ``custom_resource`` (how a job would pin a stage to it)."""
    matches = [spec for spec in worker_types(config).values() if custom_resource in spec["resources"]]
    assert len(matches) == 1, f"expected one node type with {custom_resource}, found {len(matches)}"
    return matches[0]


def fits(bundle: dict[str, float], resources: dict[str, int]) -> bool:
    return all(resources.get(name, 0) >= amount for name, amount in bundle.items() if amount > 0)


def not_from_zero(config: dict) -> list[str]:
    """Worker types that would keep nodes alive (or are malformed) with no job running."""
    return [name for name, spec in worker_types(config).items() if spec.get("min_workers", 0) != 0]


def train_config() -> TrainConfig:
    return load_config(TrainConfig, REPO / "jobs/configs/train.yaml", ["pairs=s3://bucket/pairs/"])


def test_cluster_yaml_matches_rays_schema():
    jsonschema.validate(cluster(), RAY_SCHEMA)


def test_cluster_yaml_passes_rays_own_validation():
    prepared = prepare_config(cluster())
    validate_config(prepared)
    assert prepared["available_node_types"]["head"]["max_workers"] == 0  # filled in by Ray for the head type


def misspell_max_workers(config: dict) -> None:
    config["max_worker"] = config.pop("max_workers")


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(misspell_max_workers, id="misspelt-top-level-key"),
        pytest.param(lambda config: config.update(max_workers=-1), id="negative-max-workers"),
        pytest.param(
            lambda config: config["available_node_types"]["gpu_train"].update(min_worker=0),
            id="misspelt-type-key",
        ),
        pytest.param(
            lambda config: config["available_node_types"]["gpu_train"]["resources"].update(GPU=-8),
            id="negative-gpus",
        ),
        pytest.param(
            lambda config: config["docker"].update(gpu_options=["--gpus all"]), id="unknown-docker-key"
        ),
    ],
)
def test_broken_configs_fail_the_schema(break_it):
    broken = cluster()
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, RAY_SCHEMA)


def test_head_runs_no_work():
    config = cluster()
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}


def test_every_worker_type_scales_from_zero_to_a_bound():
    config = cluster()
    assert not_from_zero(config) == []
    assert all(spec["max_workers"] >= 1 for spec in worker_types(config).values())
    assert config["max_workers"] == sum(spec["max_workers"] for spec in worker_types(config).values())
    # Ray's schema has no minimum for min_workers, so this check is what catches a negative one.
    broken = copy.deepcopy(config)
    broken["available_node_types"]["cpu_worker"]["min_workers"] = -1
    assert not_from_zero(broken) == ["cpu_worker"]


def test_training_type_holds_the_train_configs_workers_and_nothing_else_does():
    scaling = train_config().scaling
    train = node_type_with(cluster(), "synpo_train")["resources"]
    assert scaling.use_gpu and train["GPU"] >= scaling.num_workers
    assert train["CPU"] >= scaling.num_workers * scaling.cpus_per_worker
    # Ray Train's placement group is PACK, which the autoscaler treats as separate bundles: a training
    # worker must fit on no other type, or the job could be spread over the 1-GPU sampling nodes.
    worker = {"CPU": scaling.cpus_per_worker, "GPU": 1}
    hosts = [name for name, spec in worker_types(cluster()).items() if fits(worker, spec["resources"])]
    assert hosts == ["gpu_train"]


@pytest.mark.parametrize(
    "engine_pool",
    [
        load_config(PairsConfig, REPO / "jobs/configs/pairs.yaml").engine_pool,
        load_config(EvalConfig, REPO / "jobs/configs/eval.yaml").engine_pool,
    ],
    ids=["pairs", "eval"],
)
def test_sampling_type_hosts_the_engine_pool_at_its_largest(engine_pool):
    sample = node_type_with(cluster(), "synpo_sample")
    actor = {"CPU": engine_pool.num_cpus, "GPU": engine_pool.num_gpus}
    assert engine_pool.num_gpus >= 1 and fits(actor, sample["resources"])
    gpus, cpus = sample["resources"]["GPU"], sample["resources"]["CPU"]
    actors_per_node = min(gpus // engine_pool.num_gpus, cpus // engine_pool.num_cpus)
    assert sample["max_workers"] * actors_per_node >= engine_pool.max_actors


def test_cpu_type_hosts_decode_tasks_and_judge_actors():
    pairs = load_config(PairsConfig, REPO / "jobs/configs/pairs.yaml")
    cpu = node_type_with(cluster(), "synpo_cpu")["resources"]
    assert "GPU" not in cpu
    assert fits({"CPU": pairs.decode_num_cpus}, cpu) and fits({"CPU": pairs.judge_pool.num_cpus}, cpu)


def test_serving_type_hosts_the_serve_configs_replicas():
    app = yaml.safe_load((REPO / "serve/config.yaml").read_text())["applications"][0]
    scaling = ServeSettings.model_validate(app["args"]).scaling
    serve = node_type_with(cluster(), "synpo_serve")
    assert fits({"CPU": scaling.num_cpus, "GPU": scaling.num_gpus}, serve["resources"])
    assert serve["max_workers"] >= scaling.max_replicas


def test_image_is_the_projects_and_gpu_types_get_their_gpus():
    config = cluster()
    assert config["docker"]["image"] == (REPO / "infra/IMAGE").read_text().strip()
    for name, spec in worker_types(config).items():
        options = spec.get("docker", {}).get("worker_run_options", [])
        assert ("--gpus all" in options) == (spec["resources"].get("GPU", 0) > 0), name


def test_every_node_starts_ray_with_token_auth_and_the_token():
    config = cluster()
    for command in config["head_start_ray_commands"][1:] + config["worker_start_ray_commands"][1:]:
        assert command.startswith("export RAY_AUTH_MODE=token;")
    assert config["file_mounts"] == {"~/.ray/auth_token": "~/.ray/auth_token"}
