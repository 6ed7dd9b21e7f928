"""Which training checkpoints a run keeps, and which of their files each reader fetches.

A checkpoint (written by every rank, see ``worker.CheckpointWriter``) holds:

    trainer_state.json                                   the loop's counters (rank 0)
    state/mp_rank_00_model_states.pt                     the trainable weights (DeepSpeed; torch_state.pt without it)
    state/*zero_pp_rank_<r>_mp_rank_00_optim_states.pt   rank r's ZeRO optimizer shard (ZeRO-3: its module shard too)
    adapter/                                             the LoRA adapter, what serving and the registry use

Ray Train keeps ``run.keep_checkpoints`` of them, ranked by :func:`checkpoint_score`, plus the latest
always. A resuming rank fetches only what it loads (:func:`needed_to_resume`: not the other ranks'
shards, not the adapter); the driver only the latest counters and the best checkpoint's adapter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow.fs as pafs

STATE_FILE = "trainer_state.json"
ADAPTER_DIR = "adapter"
SCORE = "synpo/checkpoint_score"  # the reported metric Ray Train ranks checkpoints by (higher is better)
UNVALIDATED = -1.0e30  # the score of a checkpoint without a validation value of its own (finite: Ray's snapshot is JSON)
_RANK_SHARD = re.compile(r"zero_pp_rank_(\d+)_")


def checkpoint_score(metrics: dict[str, float], best_metric: str, lower_is_better: bool) -> float:
    """``best_metric`` of the checkpoint's own validation, signed so that higher is better; checkpoints taken
    without a validation (mid-epoch) or with a NaN one rank below every validated checkpoint."""
    value = metrics.get(best_metric)
    if value is None or math.isnan(value):
        return UNVALIDATED
    return -value if lower_is_better else value


def needed_to_resume(relative_path: str, rank: int) -> bool:
    """Whether ``rank`` reads this checkpoint file when it resumes: everything but the adapter and the other
    ranks' ZeRO shards (DeepSpeed loads only its own rank's shard unless ``elastic_checkpoint`` is set)."""
    if relative_path.split("/", 1)[0] == ADAPTER_DIR:
        return False
    shard = _RANK_SHARD.search(relative_path.rsplit("/", 1)[-1])
    return shard is None or int(shard.group(1)) == rank


def fetch(filesystem: pafs.FileSystem, path: str, into: Path, keep: Callable[[str], bool]) -> Path:
    """The checkpoint at ``path`` as a local folder holding (at least) the files ``keep`` selects by relative path:
    the folder itself when it is on this machine's disk (nothing copied), else just those files downloaded into ``into``."""
    if isinstance(filesystem, pafs.LocalFileSystem):
        return Path(path)
    root = path.rstrip("/")
    for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True)):
        relative = info.path[len(root) + 1 :]
        if info.type == pafs.FileType.File and keep(relative):
            target = into / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            pafs.copy_files(info.path, str(target), source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem())
    return into


def remove_orphans(filesystem: pafs.FileSystem, run_folder: str, kept: set[str]) -> list[str]:
    """Delete the run's ``checkpoint_*`` folders Ray Train does not list (``kept``): those a worker wrote just before
    its group was lost, whose report never reached the controller. Ray never resumes from them, nor deletes them."""
    removed = []
    for info in filesystem.get_file_info(pafs.FileSelector(run_folder, allow_not_found=True)):
        if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_") and info.path not in kept:
            filesystem.delete_dir(info.path)
            removed.append(info.path)
    if removed:
        print(f"removed {len(removed)} checkpoint folder(s) of interrupted attempts that Ray Train never registered", flush=True)
    return removed
