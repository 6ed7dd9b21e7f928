import numpy as np
import pytest

from synpo.toy.render import encode_mp4
from synpo.toy.world import make_scene
from synpo.video import VideoSamplingConfig, decode_at, probe, sample_video
from synpo.video.decode import scaled_size


@pytest.fixture(scope="module")
def long_video() -> bytes:
    """A 35 s, 8 fps toy video with a keyframe every 2 s."""
    scene = make_scene(5)
    scene = type(scene)(**{**scene.__dict__, "duration_s": 35.0})
    return encode_mp4(scene, width=160, height=120, fps=8)


def test_probe_reports_stream_facts(long_video):
    info = probe(long_video, "long.mp4")
    assert (info.width, info.height, info.codec, info.fps, info.num_frames) == (160, 120, "h264", 8.0, 280)
    assert info.duration_s == pytest.approx(35.0)


def test_sampling_counts_timestamps_and_coverage(long_video):
    sampled = sample_video(long_video, "long.mp4", VideoSamplingConfig(num_frames=16, max_side=448))
    assert sampled.frames.shape == (16, 120, 160, 3) and sampled.frames.dtype == np.uint8
    times = sampled.timestamps_s
    assert all(later > earlier for earlier, later in zip(times, times[1:], strict=False))
    assert times[0] == 0.0 and times[-1] == pytest.approx(279 / 8)  # first and last frame
    assert sampled.stats.seeks > 0 and sampled.stats.frames_decoded < 280


def test_sparse_frames_are_a_subset_of_full_frames(long_video):
    sampled = sample_video(long_video, "long.mp4", VideoSamplingConfig(num_frames=16))
    assert sampled.sparse_frames.shape[0] == 6  # ceil(16 / 3)
    for position, frame in zip(sampled.sparse_positions, sampled.sparse_frames, strict=True):
        assert np.array_equal(frame, sampled.frames[position])


def test_seeking_returns_exactly_what_a_full_decode_returns(long_video):
    targets = [0.0, 3.3, 3.4, 9.0, 17.125, 17.125, 30.0, 34.875, 1.0]
    _, seek_frames, seek_times, seek_stats = decode_at(long_video, "long.mp4", targets)
    _, full_frames, full_times, full_stats = decode_at(long_video, "long.mp4", targets, seek=False)
    assert seek_times == full_times
    assert np.array_equal(seek_frames, full_frames)
    assert full_stats.seeks == 0 and full_stats.frames_decoded == 280
    assert seek_stats.frames_decoded < full_stats.frames_decoded


def test_clip_split_follows_the_paper(long_video):
    sampled = sample_video(long_video, "long.mp4", VideoSamplingConfig(), with_clips=True)
    assert len(sampled.clips) == 4  # clamp(floor(35 / 10) + 1, 2, 16)
    assert [clip.frames.shape[0] for clip in sampled.clips] == [8, 8, 8, 8]
    assert sampled.clips[0].start_s == 0.0 and sampled.clips[-1].end_s == pytest.approx(35.0)
    for clip in sampled.clips:
        assert all(clip.start_s <= time < clip.end_s for time in clip.timestamps_s)


def test_resize_caps_the_longer_side(long_video):
    sampled = sample_video(long_video, "long.mp4", VideoSamplingConfig(num_frames=4, max_side=64))
    assert sampled.frames.shape == (4, 48, 64, 3)
    assert scaled_size(640, 480, 448) == (448, 336)
    assert scaled_size(100, 80, 448) == (100, 80)  # never upscaled


def test_local_path_and_bytes_give_the_same_frames(long_video, tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(long_video)
    config = VideoSamplingConfig(num_frames=5)
    assert np.array_equal(sample_video(path, str(path), config).frames, sample_video(long_video, "b", config).frames)


def test_sampling_config_rejects_inverted_clip_bounds():
    with pytest.raises(ValueError, match="min_clips"):
        VideoSamplingConfig(min_clips=5, max_clips=3)
