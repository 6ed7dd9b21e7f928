"""Node types on one machine: engine actors and training workers placed by custom resources, a training node lost mid-run.

    python tests/training/multinode_run.py '{"model": ..., "videos": ..., "pairs": ..., "root": ...}'

A Ray cluster of its own (``ray.cluster_utils.Cluster``): a head with CPUs only, a ``sample`` node
(``synpo_sample``) and two ``train`` nodes (``synpo_train``), as cluster.yaml's node types advertise them.
1. The pair job with ``engine_pool.resources={synpo_sample: 1}`` on two videos (offline judge).
2. The training job with ``scaling.resources_per_worker={synpo_train: 1}``, a checkpoint every step, on two
   ``train`` nodes of room for two workers each (Ray packs the group on one). Once two checkpoints exist the
   node the workers run on is removed (a preempted node); Ray Train restarts the group on the spare node
   from the last checkpoint.
Prints one line, ``RESULT {json}``: the nodes of each kind, where the actors and workers ran, the
checkpoints at the removal, the job's result. Used by test_multinode.py.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import mlflow
import ray
from ray._private import state
from ray.cluster_utils import Cluster

from synpo.config.loader import load_config
from synpo.pairgen.config import PairsConfig
from synpo.pairgen.pipeline import run_pairs
from synpo.testing.train_checkpoints import registered_checkpoint_steps
from synpo.training.config import TrainConfig
from synpo.training.ray_job import run_training

REPO = Path(__file__).resolve().parents[2]


def actor_nodes(class_fragment: str) -> set[str]:
    return {
        actor["Address"]["NodeID"] for actor in state.actors().values() if class_fragment in actor["ActorClassName"] and actor["State"] == "ALIVE"
    }


def main() -> None:
    paths = json.loads(sys.argv[1])
    root = Path(paths["root"])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    sample_node = cluster.add_node(num_cpus=1, resources={"synpo_sample": 1})
    train_nodes = {node.node_id: node for node in (cluster.add_node(num_cpus=2, resources={"synpo_train": 2}) for _ in range(2))}
    ray.init(address=cluster.address, log_to_driver=False)
    result: dict = {"head": cluster.head_node.node_id, "sample_node": sample_node.node_id, "train_nodes": sorted(train_nodes)}
    engine_seen: set[str] = set()
    train_seen: list[set[str]] = []

    def watch(stop: threading.Event) -> None:
        while not stop.is_set():
            engine_seen.update(actor_nodes("SampleStage"))
            workers = actor_nodes("RayTrainWorker")
            if workers and (not train_seen or train_seen[-1] != workers):
                train_seen.append(workers)
            time.sleep(0.2)

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,), daemon=True)
    watcher.start()
    pairs = load_config(PairsConfig, REPO / "jobs/configs/pairs_local.yaml", [
        f"input={paths['videos']}", f"output={root / 'pairs-out'}", f"engine.model={paths['model']}", "limit=2", "judge.backend=rules",
        "candidates.sampling.n=2", "candidates.sampling.max_new_tokens=16", "clips.max_new_tokens=8", "mlflow.enabled=false",
        "engine_pool.resources={synpo_sample: 1}", "engine_pool.num_cpus=1", "engine_pool.batch_size=1",
    ])  # fmt: skip
    summary = run_pairs(pairs, progress=False)
    result.update(engine_nodes=sorted(engine_seen), pairs_processed=summary.processed)

    storage = root / "ray"

    def replace_train_node() -> None:
        try:
            deadline = time.time() + 600
            while time.time() < deadline:
                workers = actor_nodes("RayTrainWorker")
                registered = registered_checkpoint_steps(storage / "multinode")
                if len(registered) >= 2 and len(workers) == 1:
                    result["checkpoints_at_removal"] = registered
                    result["removed_node"] = workers.pop()
                    cluster.remove_node(train_nodes[result["removed_node"]])  # (add_node needs the main thread: the spare joined first)
                    return
                time.sleep(0.2)
        except Exception as error:  # the test fails on it, with the error in the RESULT line
            result["replacer_error"] = repr(error)
            raise

    replacer = threading.Thread(target=replace_train_node, daemon=True)
    replacer.start()
    train = load_config(TrainConfig, REPO / "jobs/configs/train_local.yaml", [
        f"pairs={paths['pairs']}", f"model={paths['model']}", f"run.storage_path={storage}", "run.name=multinode",
        "run.checkpoint_every_steps=1", "run.max_failures=3", "scaling.resources_per_worker={synpo_train: 1}",
        f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}", f"mlflow.artifact_location={root / 'mlartifacts'}", "registry.model_name=multinode",
    ])  # fmt: skip
    job = run_training(train)
    replacer.join(timeout=5)
    stop.set()
    watcher.join(timeout=5)
    losses = mlflow.MlflowClient(train.mlflow.with_absolute_paths().tracking_uri).get_metric_history(job.mlflow_run_id, "loss")
    result.update(
        train_worker_nodes=[sorted(nodes) for nodes in train_seen], steps=job.steps, model_version=job.model_version,
        loss_steps=sorted(metric.step for metric in losses),
    )  # fmt: skip
    print("RESULT " + json.dumps(result))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main()
