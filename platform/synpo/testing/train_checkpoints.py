"""What Ray Train has registered of a run's checkpoints, for tests that interrupt a run after a checkpoint.

A ``checkpoint_*`` folder appears before its report reaches Ray Train's controller: a run interrupted
between the two restarts from the checkpoint before (or from scratch). Tests that mean "after N
checkpoints" wait for the controller's snapshot to list them.
"""

from __future__ import annotations

import json
from pathlib import Path

SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train 2.60's record of reported checkpoints, in the run folder


def registered_checkpoint_steps(run_folder: Path) -> list[int]:
    """The ``step`` metric of every checkpoint Ray Train has registered in ``run_folder`` (oldest first)."""
    snapshot = Path(run_folder) / SNAPSHOT
    if not snapshot.is_file():
        return []
    return [entry["metrics"]["step"] for entry in json.loads(snapshot.read_text())["checkpoint_results"]]
