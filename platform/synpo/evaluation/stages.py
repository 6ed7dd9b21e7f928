"""The evaluation plan's stages: decode (CPU tasks) -> caption (engine actor pool) -> write (tasks).

Each stage is a callable on a pyarrow batch, testable without Ray. A video that cannot be read or
decoded keeps a ``failure`` and no caption; the driver refuses to score a set with failures (two
models are only comparable on the same videos) and says which, and a rerun retries just those.
Captions are greedy (n = 1, temperature 0): the same model on the same set writes the same captions.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq

from synpo.pairgen.rows import pack_array, to_table, unpack_array
from synpo.sampling.engine import EngineSettings, build_engine
from synpo.sampling.request import CaptionRequest, SamplingParams
from synpo.storage import ObjectNotFound, Storage, StorageConfig, StorageError, join_uri
from synpo.video.errors import VideoError
from synpo.video.sampler import VideoSamplingConfig, sample_video

CAPTIONS = pa.schema(
    [
        pa.field("video_id", pa.string()),
        pa.field("video", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("caption", pa.string()),  # null when the video failed
        pa.field("tokens", pa.int64()),
        pa.field("failure", pa.string()),  # "decode: VideoError: ..." or null
    ]
)
DECODED = pa.schema(
    [*[CAPTIONS.field(name) for name in ("video_id", "video", "prompt", "failure")], pa.field("frames", pa.binary()), pa.field("duration_s", pa.float64())]
)


class DecodeStage:
    """``{video_id, video, prompt} -> DECODED``: the video's frames, or its failure."""

    def __init__(self, video: VideoSamplingConfig, storage: StorageConfig) -> None:
        self.video, self.storage = video, Storage(storage)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        for row in batch.to_pylist():
            try:
                sampled = sample_video(self.storage.local_path_or_bytes(row["video"]), row["video"], self.video)
                rows.append({**row, "frames": pack_array(sampled.frames), "duration_s": sampled.info.duration_s})
            except (VideoError, StorageError, FileNotFoundError) as error:
                rows.append({**row, "failure": f"decode: {type(error).__name__}: {error}"})
        return to_table(rows, DECODED)


class CaptionStage:
    """``DECODED -> CAPTIONS``: one greedy caption per decoded video, all of a batch in one engine call."""

    def __init__(self, engine: EngineSettings, max_new_tokens: int, storage: StorageConfig) -> None:
        self.engine = build_engine(engine, Storage(storage))
        self.params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        decoded = [row for row in rows if row["failure"] is None]
        requests = [
            CaptionRequest(row["video_id"], row["prompt"], frames=unpack_array(row["frames"]), params=self.params, duration_s=row["duration_s"])
            for row in decoded
        ]
        results = {result.request_id: result.candidates[0] for result in self.engine.generate(requests)} if requests else {}
        out = []
        for row in rows:
            candidate = results.get(row["video_id"])
            out.append({**row, "caption": None if candidate is None else candidate.text, "tokens": None if candidate is None else len(candidate.token_ids)})
        return to_table(out, CAPTIONS)


class WriteStage:
    """``CAPTIONS -> CAPTIONS``: the batch saved as one Parquet part under ``<output>/captions/`` (named by its
    videos, so a retried batch replaces its part); the rows pass through to the driver."""

    def __init__(self, output: str, storage: StorageConfig) -> None:
        self.folder, self.storage = join_uri(output, "captions"), Storage(storage)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if batch.num_rows:
            name = hashlib.sha256("\n".join(sorted(batch.column("video_id").to_pylist())).encode()).hexdigest()[:16]
            sink = pa.BufferOutputStream()
            pq.write_table(batch, sink)
            self.storage.write_bytes(join_uri(self.folder, f"part-{name}.parquet"), sink.getvalue().to_pybytes())
        return batch


def written_captions(output: str, storage: Storage) -> dict[str, dict]:
    """Every captioned row already under ``<output>/captions/`` (a rerun skips these videos), by video id."""
    folder = join_uri(output, "captions")
    try:
        parts = storage.list(folder, (".parquet",))
    except ObjectNotFound:  # a first run: no captions folder yet
        return {}
    rows: dict[str, dict] = {}
    for uri in parts:
        for row in pq.read_table(pa.BufferReader(storage.read_bytes(uri))).to_pylist():
            if row["caption"] is not None:
                rows[row["video_id"]] = row
    return rows
