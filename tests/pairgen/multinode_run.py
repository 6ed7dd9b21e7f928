"""Run pair generation on a 2-node Ray cluster on this machine and remove the worker node mid-run.

    python tests/pairgen/multinode_run.py key=value ...   # PairsConfig overrides (of jobs/configs/pairs_local.yaml)

Prints one line, ``RESULT {json}`` (Ray may print its own lines around it): the nodes the engine
actors ran on, how many videos were written when the node was removed, and what the output holds.
Used by test_resume_and_nodes.py.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray._private import state
from ray.cluster_utils import Cluster

sys.path.insert(0, str(Path(__file__).parent))
from pairgen_support import LOCAL_YAML  # noqa: E402

from synpo.config.loader import load_config  # noqa: E402
from synpo.pairgen import progress  # noqa: E402
from synpo.pairgen.config import PairsConfig  # noqa: E402
from synpo.pairgen.pipeline import run_pairs  # noqa: E402
from synpo.storage import Storage  # noqa: E402


def engine_nodes() -> set[str]:
    return {
        actor["Address"]["NodeID"]
        for actor in state.actors().values()
        if "SampleStage" in actor["ActorClassName"] and actor["State"] == "ALIVE"
    }


def main() -> None:
    pools = ["engine_pool.min_actors=2", "engine_pool.max_actors=2", "engine_pool.num_cpus=1", "engine_pool.spread=true",
             "engine_pool.batch_size=1", "write_batch_size=1"]  # fmt: skip
    config = load_config(PairsConfig, LOCAL_YAML, [*sys.argv[1:], *pools])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, log_to_driver=False)
    markers = Path(config.output) / "_progress"
    seen: dict = {}

    def remove_worker_mid_run() -> None:
        deadline = time.time() + 600
        while time.time() < deadline:
            nodes = engine_nodes()
            written = len(list(markers.glob("*.json"))) if markers.is_dir() else 0
            if len(nodes) == 2:  # both engine actors up: take one node away now, whatever was written (on a loaded
                # machine one actor can finish every video before the other is up, if we wait for a written video too)
                seen.update(engine_nodes_before=sorted(nodes), removed_after_videos=written)
                cluster.remove_node(worker)
                return
            time.sleep(0.2)

    remover = threading.Thread(target=remove_worker_mid_run, daemon=True)
    remover.start()
    summary = run_pairs(config, progress=False)
    remover.join(timeout=5)
    statuses = progress.completed(config.output, Storage())
    print("RESULT " + json.dumps({**seen, "completed": sorted(statuses), "processed": summary.processed, "paired": summary.paired,
                      "already_done_in_summary": summary.already_done}))  # fmt: skip
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main()
