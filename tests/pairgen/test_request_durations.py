"""Every caption request knows how long its frames span: the whole video for candidates, one clip for clip captions.

(Models that place frames in time, like Qwen2.5-VL, need it; see tests/sampling/test_qwen2_5_vl_engine.py.)
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from synpo.evaluation.stages import DecodeStage
from synpo.pairgen.config import CandidateSettings, ClipSettings
from synpo.pairgen.rows import pack_array
from synpo.pairgen.sample_stage import SampleStageSettings, video_requests
from synpo.sampling.engine import EngineSettings
from synpo.storage import StorageConfig
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.video.sampler import VideoSamplingConfig


def test_clip_and_candidate_requests_carry_their_span():
    frames = np.zeros((6, 8, 8, 3), np.uint8)
    row = {
        "video_id": "v", "prompt": "Describe.", "duration_s": 12.0,
        "frames": pack_array(frames), "sparse_frames": pack_array(frames[::3]), "clip_frames": pack_array(np.zeros((3, 4, 8, 8, 3), np.uint8)),
    }  # fmt: skip
    settings = SampleStageSettings(engine=EngineSettings(kind="hf", model="unused"), clips=ClipSettings(), candidates=CandidateSettings(), seed=0)
    *clips, candidates = video_requests(row, settings)
    assert [clip.duration_s for clip in clips] == [4.0, 4.0, 4.0]  # three even clips of a 12 s video
    assert candidates.duration_s == 12.0 and len(candidates.frames) == 6


def test_the_eval_decode_stage_records_each_videos_duration(tmp_path):
    rows = write_toy_videos(str(tmp_path), 2, seed=8, spec=ToyVideoSpec(min_duration_s=5, max_duration_s=9), progress=False)
    batch = pa.Table.from_pylist([{"video_id": row["id"], "video": row["video"], "prompt": row["prompt"], "failure": None} for row in rows])
    decoded = DecodeStage(VideoSamplingConfig(num_frames=4, max_side=64), StorageConfig())(batch).to_pylist()
    truth = [json.loads((tmp_path / f"{row['id']}.json").read_text())["duration_s"] for row in rows]
    assert [row["duration_s"] for row in decoded] == truth
