"""The KubeRay manifests in infra/kuberay/ are well formed, run the image infra/IMAGE names, and give the jobs
what their configs ask for.

RayJobs: the entrypoint is a job of jobs/ with a config of jobs/configs/, and its ``key=value`` overrides
load with that job's config class, as the job itself loads them; the worker groups hold the GPUs and CPUs
the loaded config's pools or scaling reserve. The RayService: ``render_rayservice.py --check`` passes on the
committed file, its ``serveConfigV2`` is serve/config.yaml, and its GPU group follows that file's scaling.
Every Ray Pod: the project image, Secrets by reference, the models PVC, and a /dev/shm that holds Ray's object
store. The MLflow server (a Deployment + Service, not a Ray resource): the project image, a command line the
pinned ``mlflow server`` accepts, its Secret by reference, /health probes, a Service that reaches it. No
cluster, no Ray, no network.
"""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from mlflow.cli import server as mlflow_server_command
from packaging.requirements import Requirement
from ray._private import ray_constants

from synpo.config.loader import load_config
from synpo.evaluation.config import EvalConfig
from synpo.pairgen.config import PairsConfig
from synpo.serving.settings import ServeSettings
from synpo.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
KUBERAY = REPO / "infra" / "kuberay"
RENDER = KUBERAY / "render_rayservice.py"
MLFLOW_SERVER = "mlflow-server.yaml"  # a Deployment + Service, not a Ray resource: its own tests at the end
MANIFESTS = sorted(path for path in KUBERAY.glob("*.yaml") if not path.name.endswith(".template.yaml") and path.name != MLFLOW_SERVER)
RAYJOBS = ["rayjob-pairs.yaml", "rayjob-train.yaml", "rayjob-eval.yaml"]
JOB_CONFIG_CLASSES = {"jobs/generate_pairs.py": PairsConfig, "jobs/train.py": TrainConfig, "jobs/evaluate.py": EvalConfig}
GPU = "nvidia.com/gpu"


def manifest(name: str) -> dict:
    (document,) = yaml.safe_load_all((KUBERAY / name).read_text())
    return document


def ray_cluster(resource: dict) -> dict:
    """The RayCluster spec inside a RayJob (``rayClusterSpec``) or a RayService (``rayClusterConfig``)."""
    return resource["spec"]["rayClusterSpec" if resource["kind"] == "RayJob" else "rayClusterConfig"]


def pod_specs(cluster: dict) -> list[dict]:
    return [cluster["headGroupSpec"]["template"]["spec"]] + [group["template"]["spec"] for group in cluster["workerGroupSpecs"]]


def pod_limits(group: dict) -> dict:
    (container,) = group["template"]["spec"]["containers"]
    assert container["resources"]["requests"] == container["resources"]["limits"], "requests = limits (Guaranteed Pods)"
    return container["resources"]["limits"]


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def quantity_bytes(quantity: str) -> int:
    units = {"Gi": 1024**3, "Mi": 1024**2, "G": 10**9, "M": 10**6}
    for unit, factor in units.items():
        if quantity.endswith(unit):
            return int(float(quantity.removesuffix(unit)) * factor)
    return int(quantity)


def ray_object_store_bytes(memory_bytes: int, shm_bytes: int) -> int:
    """Ray's default object store on a Pod (``ray._private.utils.resolve_object_store_memory``): 30% of its
    memory, capped at 200 GB and at 95% of /dev/shm, though never below 10 GB by that last cap."""
    shm_cap = max(ray_constants.REQUIRE_SHM_SIZE_THRESHOLD, int(shm_bytes * 0.95))
    cap = min(ray_constants.DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES, shm_cap)
    return min(int(memory_bytes * ray_constants.DEFAULT_OBJECT_STORE_MEMORY_PROPORTION), cap)


def gpus_per_pod(group: dict) -> int:
    return int(pod_limits(group).get(GPU, 0))


def ray_cpus_per_pod(group: dict) -> float:
    """The CPUs Ray schedules on: ``num-cpus`` when set, else the Pod's CPU limit (KubeRay's default)."""
    return float(group["rayStartParams"].get("num-cpus", cpu_cores(pod_limits(group)["cpu"])))


def gpu_groups(cluster: dict) -> list[dict]:
    return [group for group in cluster["workerGroupSpecs"] if gpus_per_pod(group) > 0]


def entrypoint(resource: dict) -> tuple[str, str, list[str]]:
    """(job script, --config file, key=value overrides) of a RayJob's entrypoint."""
    python, script, flag, config, *overrides = shlex.split(resource["spec"]["entrypoint"])
    assert (python, flag) == ("python", "--config"), resource["spec"]["entrypoint"]
    return script, config, overrides


def job_config(name: str):
    """The config a RayJob's driver loads: its entrypoint's config file and overrides, validated by the job's class."""
    script, config, overrides = entrypoint(manifest(name))
    loaded = load_config(JOB_CONFIG_CLASSES[script], REPO / config, overrides)
    if isinstance(loaded, PairsConfig | EvalConfig):
        loaded.require_paths()  # the jobs call it before any work
    return loaded


def serve_settings() -> ServeSettings:
    (application,) = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())["applications"]
    return ServeSettings.model_validate(application["args"])


def locked_ray_version() -> str:
    (line,) = [line for line in (REPO / "requirements.lock").read_text().splitlines() if line.startswith("ray==")]
    return line.removeprefix("ray==")


def run_render(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RENDER), *arguments], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_the_expected_manifests_are_there():
    assert [path.name for path in MANIFESTS] == sorted([*RAYJOBS, "rayservice.yaml"])
    assert (KUBERAY / MLFLOW_SERVER).is_file()


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_a_manifest_is_a_ray_resource_on_the_project_image(path):
    resource = manifest(path.name)
    assert resource["apiVersion"] == "ray.io/v1" and resource["kind"] in ("RayJob", "RayService")
    assert resource["metadata"]["name"] and resource["spec"]
    cluster = ray_cluster(resource)
    assert cluster["rayVersion"] == locked_ray_version()
    assert cluster["authOptions"] == {"mode": "token"}  # the dashboard and job API answer only with the token
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # the head runs no tasks or actors
    image = (REPO / "infra" / "IMAGE").read_text().strip()
    for pod in pod_specs(cluster):
        for container in pod["containers"]:
            assert container["image"] == image, f"{container['name']}: {container['image']} is not infra/IMAGE's {image}"
            assert {"secretRef": {"name": "synpo-secrets"}} in container["envFrom"]
            inline = [variable["name"] for variable in container.get("env", []) if "value" in variable]
            assert not inline, f"{container['name']}: variables set inline ({inline}); secrets come from Secrets"
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            volumes = {volume["name"]: volume for volume in pod["volumes"]}
            assert "persistentVolumeClaim" in volumes[mounts["/mnt/models"]]
            assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_rays_object_store_fits_in_each_pods_dev_shm(path):
    """Else Ray puts it in /tmp (a warning, then slow transfers), or refuses to start above 10 GB."""
    for pod in pod_specs(ray_cluster(manifest(path.name))):
        (container,) = pod["containers"]
        (shm,) = [volume for volume in pod["volumes"] if volume["name"] == "dshm"]
        memory, shm_bytes = quantity_bytes(container["resources"]["limits"]["memory"]), quantity_bytes(shm["emptyDir"]["sizeLimit"])
        assert ray_object_store_bytes(memory, shm_bytes) <= shm_bytes, f"{container['name']}: /dev/shm {shm['emptyDir']['sizeLimit']}"


@pytest.mark.parametrize("name", RAYJOBS)
def test_a_rayjob_runs_a_job_of_the_repository_with_overrides_its_config_accepts(name):
    script, config, overrides = entrypoint(manifest(name))
    assert (REPO / script).is_file() and (REPO / config).is_file()
    assert overrides, "the entrypoint gives the run's inputs and outputs"
    job_config(name)  # raises ConfigError naming a key the config does not have, or a bad value


@pytest.mark.parametrize("name", RAYJOBS)
def test_a_rayjob_cleans_up_after_itself(name):
    spec = manifest(name)["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert spec["submissionMode"] == "K8sJobMode" and spec["backoffLimit"] >= 0 and spec["activeDeadlineSeconds"] > 0


def test_the_training_cluster_holds_one_gpu_and_its_cpus_per_ray_train_worker():
    scaling = job_config("rayjob-train.yaml").scaling
    assert scaling.use_gpu
    groups = gpu_groups(ray_cluster(manifest("rayjob-train.yaml")))
    assert sum(group["replicas"] * gpus_per_pod(group) for group in groups) == scaling.num_workers
    for group in groups:
        assert group["minReplicas"] == group["replicas"] == group["maxReplicas"]  # a fixed worker group: no autoscaling
        assert ray_cpus_per_pod(group) == gpus_per_pod(group) * scaling.cpus_per_worker
        assert cpu_cores(pod_limits(group)["cpu"]) >= ray_cpus_per_pod(group)


@pytest.mark.parametrize("name", ["rayjob-pairs.yaml", "rayjob-eval.yaml"])
def test_the_engine_group_scales_with_the_engine_pool(name):
    pool = job_config(name).engine_pool
    cluster = ray_cluster(manifest(name))
    assert cluster["enableInTreeAutoscaling"] is True
    (group,) = gpu_groups(cluster)
    actors_per_pod = gpus_per_pod(group) / pool.num_gpus
    assert actors_per_pod == int(actors_per_pod) >= 1, "whole engine actors per Pod"
    assert group["minReplicas"] * actors_per_pod == pool.min_actors
    assert group["maxReplicas"] * actors_per_pod == pool.max_actors
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert ray_cpus_per_pod(group) == actors_per_pod * pool.num_cpus  # no CPU left over for decode tasks on GPU Pods
    assert cpu_cores(pod_limits(group)["cpu"]) >= ray_cpus_per_pod(group)


def test_the_pair_job_has_cpu_workers_for_decoding_and_the_judge():
    config = job_config("rayjob-pairs.yaml")
    cluster = ray_cluster(manifest("rayjob-pairs.yaml"))
    (group,) = [group for group in cluster["workerGroupSpecs"] if gpus_per_pod(group) == 0]
    assert ray_cpus_per_pod(group) >= max(config.decode_num_cpus, config.judge_pool.num_cpus)
    judges_and_a_decoder = config.judge_pool.max_actors * config.judge_pool.num_cpus + config.decode_num_cpus
    assert group["maxReplicas"] * ray_cpus_per_pod(group) >= judges_and_a_decoder
    assert group["minReplicas"] * ray_cpus_per_pod(group) >= config.judge_pool.min_actors * config.judge_pool.num_cpus


def test_the_committed_rayservice_is_current():
    result = run_render("--check")
    assert result.returncode == 0, result.stderr


def test_the_rayservice_serves_serve_config_yaml_with_its_scaling():
    rayservice = manifest("rayservice.yaml")
    assert (KUBERAY / "rayservice.yaml").read_text().startswith("# GENERATED by infra/kuberay/render_rayservice.py")
    assert yaml.safe_load(rayservice["spec"]["serveConfigV2"]) == yaml.safe_load((REPO / "serve" / "config.yaml").read_text())
    scaling = serve_settings().scaling
    cluster = ray_cluster(rayservice)
    assert cluster["enableInTreeAutoscaling"] is True
    (group,) = gpu_groups(cluster)
    assert (group["minReplicas"], group["maxReplicas"], group["replicas"]) == (scaling.min_replicas, scaling.max_replicas, scaling.min_replicas)
    assert gpus_per_pod(group) == scaling.num_gpus and ray_cpus_per_pod(group) == scaling.num_cpus
    assert cpu_cores(pod_limits(group)["cpu"]) >= ray_cpus_per_pod(group)
    for pod in pod_specs(cluster):
        (container,) = pod["containers"]
        (token,) = [variable for variable in container["env"] if variable["name"] == serve_settings().auth.token_env]
        assert token["valueFrom"]["secretKeyRef"] == {"name": "synpo-serve-token", "key": "token"}


def test_check_fails_on_a_stale_rayservice_and_names_the_difference(tmp_path):
    stale = tmp_path / "rayservice.yaml"
    stale.write_text((KUBERAY / "rayservice.yaml").read_text().replace("max_replicas: 4", "max_replicas: 3"))
    result = run_render("--check", "--rayservice", str(stale))
    assert result.returncode == 1
    changed = [" ".join(line.split()) for line in result.stderr.splitlines() if line[:1] in "-+" and "max_replicas" in line]
    assert changed == ["- max_replicas: 3", "+ max_replicas: 4"], result.stderr
    assert "is stale" in result.stderr
    assert run_render("--rayservice", str(stale)).returncode == 0  # regenerating fixes it
    assert run_render("--check", "--rayservice", str(stale)).returncode == 0


def test_the_render_follows_the_serve_scaling_and_refuses_fractions_of_a_pod():
    spec = importlib.util.spec_from_file_location("render_rayservice", RENDER)
    render_rayservice = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render_rayservice)
    serve_text = (REPO / "serve" / "config.yaml").read_text()
    template = render_rayservice.TEMPLATE.read_text()
    scaled = serve_text.replace("max_replicas: 4", "max_replicas: 6").replace("num_cpus: 4", "num_cpus: 6")
    (group,) = gpu_groups(ray_cluster(yaml.safe_load(render_rayservice.render(scaled, template))))
    assert group["maxReplicas"] == 6 and ray_cpus_per_pod(group) == 6
    with pytest.raises(ValueError, match="scaling.num_gpus = 0.5"):
        render_rayservice.render(serve_text.replace("num_gpus: 1", "num_gpus: 0.5"), template)


def mlflow_server() -> dict[str, dict]:
    """The MLflow server's resources by kind."""
    return {document["kind"]: document for document in yaml.safe_load_all((KUBERAY / MLFLOW_SERVER).read_text())}


def test_the_mlflow_server_runs_mlflow_server_on_the_project_image_with_its_secret_by_reference():
    resources = mlflow_server()
    assert sorted(resources) == ["Deployment", "Service"]
    assert resources["Deployment"]["apiVersion"] == "apps/v1" and resources["Service"]["apiVersion"] == "v1"
    (container,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == (REPO / "infra" / "IMAGE").read_text().strip()
    assert container["command"] == ["mlflow", "server"]
    options = mlflow_server_command.make_context("server", list(container["args"])).params  # the pinned MLflow parses them
    assert options["port"] == 5000 and options["host"] == "0.0.0.0"
    assert options["serve_artifacts"] and options["artifacts_destination"].startswith("s3://")  # artifacts proxied to S3
    assert "mlflow.internal:5000" in options["allowed_hosts"].split(",")  # the Host header of the configs' tracking_uri
    variables = {variable["name"]: variable for variable in container["env"]}
    inline = [name for name, variable in variables.items() if "value" in variable]
    assert not inline, f"variables set inline ({inline}); secrets come from Secrets"
    for name in ("MLFLOW_BACKEND_STORE_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # mlflow server reads the URI from the variable
        reference = variables[name]["valueFrom"]["secretKeyRef"]
        assert (reference["name"], reference["key"]) == ("synpo-mlflow", name) and not reference.get("optional")


def test_the_mlflow_service_reaches_the_servers_port_and_its_health_probe():
    resources = mlflow_server()
    deployment, service = resources["Deployment"], resources["Service"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels and service["spec"]["selector"] == labels
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (port,) = container["ports"]
    (service_port,) = service["spec"]["ports"]
    assert port["containerPort"] == service_port["port"] == 5000 and service_port["targetPort"] in (port["name"], 5000)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health" and container[probe]["httpGet"]["port"] in (port["name"], 5000)
    assert container["resources"]["requests"] == container["resources"]["limits"]


def test_the_image_has_the_postgresql_driver_the_mlflow_backend_uri_names():
    """The Secret's URI is postgresql+psycopg2://...; the image installs pyproject's gpu extra (less vLLM) at the lock's pins."""
    gpu = [Requirement(text) for text in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]]
    (driver,) = [requirement for requirement in gpu if requirement.name == "psycopg2-binary"]
    locked = [line for line in (REPO / "requirements.lock").read_text().splitlines() if line.startswith("psycopg2-binary==")]
    assert locked == [f"psycopg2-binary{driver.specifier}"]
    assert "postgresql+psycopg2://" in (KUBERAY / MLFLOW_SERVER).read_text()
