"""Resume: what an output folder already holds, and making it consistent before a run adds to it.

- :func:`completed` reads every batch marker (``_progress/<batch>.json``) -> {video id: status};
  those videos are skipped by the next run (no re-sampling, no re-judging).
- :func:`remove_orphans` deletes part files whose batch has no marker (written by a run that died
  before the marker), so their videos are redone once and never counted twice.
- :func:`release_judge_retries` takes the videos a batch marked ``judge_retry`` (no pair because the
  judge's calls failed) out of that batch's parts and marker, so this run judges them again.
- :func:`check_fingerprint` refuses to add to an output written with different settings (another
  model, other candidates, another judge...): mixing them would make a dataset nobody asked for.
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synpo.config.base import differences
from synpo.errors import UserError
from synpo.pairgen.config import PairsConfig
from synpo.pairgen.write_stage import TABLES
from synpo.storage import ObjectNotFound, Storage, join_uri

FINGERPRINT = "_progress/_settings.json"


class ResumeError(UserError, ValueError):
    """An output folder that cannot be resumed with this config; says what differs."""


def _markers(output: str, storage: Storage) -> list[dict]:
    try:
        uris = storage.list(join_uri(output, "_progress"), suffixes=(".json",))
    except ObjectNotFound:
        return []
    return [json.loads(storage.read_text(uri)) for uri in uris]


def completed(output: str, storage: Storage) -> dict[str, str]:
    """Every video id a finished batch holds, with its status; a video in two batches is an error."""
    statuses: dict[str, str] = {}
    owners: dict[str, str] = {}
    for marker in _markers(output, storage):
        for video_id, status in marker["videos"].items():
            if video_id in owners:
                raise ResumeError(f"{output}: video {video_id!r} is in batches {owners[video_id]} and {marker['batch']}")
            owners[video_id] = marker["batch"]
            statuses[video_id] = status
    return statuses


def release_judge_retries(output: str, storage: Storage) -> list[str]:
    """Drop the ``judge_retry`` videos from their batches (parts first, the marker last: a crash in between
    leaves a marker that still lists them, and the next run drops them again); returns their ids."""
    released: list[str] = []
    for marker in _markers(output, storage):
        retry = marker.get("judge_retry") or []
        if not retry:
            continue
        for table in TABLES:
            uri = join_uri(output, table, f"part-{marker['batch']}.parquet")
            if not storage.exists(uri):
                continue
            rows = pq.read_table(io.BytesIO(storage.read_bytes(uri)))
            kept = rows.filter(pc.invert(pc.is_in(rows["video_id"], value_set=pa.array(retry))))
            if kept.num_rows == 0:
                storage.delete(uri)
            elif kept.num_rows < rows.num_rows:
                buffer = io.BytesIO()
                pq.write_table(kept, buffer)
                storage.write_bytes(uri, buffer.getvalue())
        videos = {video_id: status for video_id, status in marker["videos"].items() if video_id not in retry}
        marker_uri = join_uri(output, "_progress", f"{marker['batch']}.json")
        if videos:
            storage.write_text(marker_uri, json.dumps({**marker, "videos": videos, "judge_retry": []}))
        else:
            storage.delete(marker_uri)
        released.extend(retry)
    return released


def remove_orphans(output: str, storage: Storage) -> list[str]:
    """Delete part files of batches without a marker; returns the deleted URIs."""
    finished = {marker["batch"] for marker in _markers(output, storage)}
    removed = []
    for table in TABLES:
        try:
            parts = storage.list(join_uri(output, table), suffixes=(".parquet",))
        except ObjectNotFound:
            continue
        for uri in parts:
            if uri.rsplit("/", 1)[-1].removeprefix("part-").removesuffix(".parquet") not in finished:
                storage.delete(uri)
                removed.append(uri)
    return removed


def fingerprint(config: PairsConfig) -> dict:
    """The settings that decide what rows a video gets (not where or how fast they are computed)."""
    dumped = config.model_dump(mode="json")
    judge = {key: dumped["judge"][key] for key in ("backend", "base_url", "model", "response_format", "weights", "min_margin")}
    engine = {key: dumped["engine"][key] for key in ("kind", "model", "adapter")}
    keys = ("prompt", "seed", "video", "candidates", "clips")
    return {**{key: dumped[key] for key in keys}, "engine": engine, "judge": judge}


def check_fingerprint(config: PairsConfig, storage: Storage) -> None:
    """Record the settings on a new output; on an existing one, refuse if they changed."""
    uri = join_uri(config.output, FINGERPRINT)
    current = fingerprint(config)
    if not storage.exists(uri):
        storage.write_text(uri, json.dumps(current, indent=1))
        return
    changes = differences(json.loads(storage.read_text(uri)), current)
    if changes:
        raise ResumeError(
            f"{config.output} was written with other settings; resuming would mix datasets. Changed: "
            + "; ".join(changes[:8])
            + ". Use a new output, or the original settings."
        )
