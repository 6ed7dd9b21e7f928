"""Config sections every job shares: where Ray runs, where MLflow tracks, where the registry keeps models.

Pair generation, training, and later evaluation and serving embed these same models (``ray:``,
``mlflow:``, ``registry:`` in their YAML), so a cluster's settings are written once and read the
same way by every job. A job that wants other defaults passes ``default_factory=lambda: MlflowSettings(...)``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pydantic

from synpo.config.base import StrictModel
from synpo.storage import absolute_tracking_uri, absolute_uri

logger = logging.getLogger(__name__)
JOB_CONFIG_VARIABLE = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job manager in a submitted job's driver: the job's runtime env


class RaySettings(StrictModel):
    """Where Ray runs: a cluster to join, or a local Ray the job starts."""

    address: str | None = pydantic.Field(
        default=None, description="Ray cluster address (None: $RAY_ADDRESS as set inside `ray job submit`, else a new local Ray)"
    )
    num_cpus: int | None = pydantic.Field(default=None, ge=1, description="logical CPUs of a local Ray started by the job (ignored on a cluster)")

    def init(self) -> None:
        """Join the cluster (never passing local resources to it, which Ray refuses) or start a local Ray.

        On a cluster the workers import the synpo this driver runs (:func:`code_runtime_env`), not a copy
        installed on the nodes; a local Ray's workers share the driver's interpreter and paths.
        """
        import ray

        if ray.is_initialized():
            return
        if self.address is not None or os.environ.get("RAY_ADDRESS"):
            ray.init(address=self.address, runtime_env=code_runtime_env())
        else:
            ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False)  # "local": never a `ray start` head found on the machine


def code_runtime_env() -> dict:
    """A runtime env shipping this process's ``synpo`` package to the cluster's workers as a ``py_modules`` entry.

    Under ``ray job submit --working-dir .`` the job's entrypoint imports the submitted checkout's
    ``platform/synpo`` (``jobs/*.py`` put it first on ``sys.path``), but Ray's workers would import
    whatever synpo the nodes have installed: an edited library would run on the driver only. Ray
    uploads the package once per job (content-addressed) and puts it first on every worker's path.
    A job submitted with its own ``py_modules`` keeps them (Ray refuses to merge the same field twice).
    """
    import synpo

    job_runtime_env = json.loads(os.environ.get(JOB_CONFIG_VARIABLE, "{}")).get("runtime_env") or {}
    if "py_modules" in job_runtime_env:
        logger.info("the job's runtime env sets py_modules %s: synpo is not added to them", job_runtime_env["py_modules"])
        return {}
    return {"py_modules": [str(Path(synpo.__file__).parent)]}


class MlflowSettings(StrictModel):
    """Experiment tracking: the job's run, its params, metrics and artifacts."""

    enabled: bool = pydantic.Field(default=True, description="track the job in MLflow")
    tracking_uri: str = pydantic.Field(default="sqlite:///runs/mlflow.db", description="MLflow tracking URI (sqlite file or server URL)")
    experiment: str = pydantic.Field(default="synpo", description="MLflow experiment name")
    artifact_location: str | None = pydantic.Field(
        default=None,
        description="artifact root when the job creates the experiment (local folder or s3://; None: mlartifacts/ beside a "
        "sqlite:/// database, the server's default for a tracking server)",
    )
    run_name: str | None = pydantic.Field(default=None, description="MLflow run name (None: the job derives one)")

    def with_absolute_paths(self) -> MlflowSettings:
        """Local paths made absolute, so Ray workers (other working directories) reach the same store."""
        return self.model_copy(
            update={"tracking_uri": absolute_tracking_uri(self.tracking_uri), "artifact_location": absolute_uri(self.artifact_location)}
        )

    def experiment_id(self) -> str:
        """The id of ``experiment`` in ``tracking_uri``, created (with ``artifact_location``) if it does not exist yet."""
        from mlflow import MlflowClient

        client = MlflowClient(self.tracking_uri)
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is not None:
            return experiment.experiment_id
        return client.create_experiment(self.experiment, artifact_location=self.artifact_root())

    def artifact_root(self) -> str | None:
        """``artifact_location``; for a ``sqlite:///`` store without one, ``mlartifacts/`` beside the database (MLflow's own
        default is ``./mlruns`` in whatever folder the job was started from)."""
        if self.artifact_location is not None or not self.tracking_uri.startswith("sqlite:///"):
            return self.artifact_location
        database = Path(self.tracking_uri.removeprefix("sqlite:///"))
        return str(database.absolute().parent / "mlartifacts")


class RegistrySettings(StrictModel):
    """The MLflow model registry: which registered model a job's model becomes a version of."""

    model_name: str | None = pydantic.Field(default="synpo-captioner", description="registered model name (None: log, don't register)")
    include_base_model: bool = pydantic.Field(
        default=True, description="copy the base model into the logged model (False: record its path; it must be readable where the model loads)"
    )
