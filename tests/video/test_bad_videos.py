"""Every kind of bad input raises VideoError naming the file and the problem."""

import pytest

from broken_videos import audio_only_mp4, unknown_codec_mp4, zero_duration_mp4
from synpo.toy.render import encode_mp4
from synpo.toy.world import make_scene
from synpo.video import VideoError, VideoSamplingConfig, sample_video


@pytest.fixture(scope="module")
def good_mp4() -> bytes:
    return encode_mp4(make_scene(1))


def cases(good: bytes) -> dict[str, tuple[bytes, str]]:
    return {
        "zero bytes": (b"", "empty"),
        "text named mp4": (b"these are some notes, not a video\n" * 20, "not a readable video container"),
        "truncated media": (good[: len(good) * 6 // 10], "truncated"),
        "truncated index": (encode_mp4(make_scene(1), faststart=False)[: len(good) // 2], "not a readable video container"),
        "audio only": (audio_only_mp4(), "no video stream (streams found: audio)"),
        "zero duration": (zero_duration_mp4(), "zero duration"),
        "unknown codec": (unknown_codec_mp4(good), "unreadable codec"),
    }


@pytest.mark.parametrize(
    "case", ["zero bytes", "text named mp4", "truncated media", "truncated index", "audio only", "zero duration", "unknown codec"]
)
def test_bad_video_raises_one_error_type_naming_file_and_problem(good_mp4, case):
    data, reason = cases(good_mp4)[case]
    uri = f"s3://bucket/{case.replace(' ', '_')}.mp4"
    with pytest.raises(VideoError) as error:
        sample_video(data, uri, VideoSamplingConfig(), with_clips=True)
    assert str(error.value).startswith(uri + ": ")
    assert reason in error.value.reason


def test_missing_and_empty_local_files(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        sample_video(tmp_path / "absent.mp4", "absent.mp4", VideoSamplingConfig())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        sample_video(empty, str(empty), VideoSamplingConfig())
