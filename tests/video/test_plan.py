import math

import pytest

from synpo.video.plan import clip_count, clip_ranges, sparse_positions, uniform_indices


def test_uniform_indices_cover_first_and_last_and_increase():
    indices = uniform_indices(0, 480, 16)
    assert len(indices) == 16 and indices[0] == 0 and indices[-1] == 479
    assert all(later > earlier for earlier, later in zip(indices, indices[1:], strict=False))


def test_uniform_indices_repeat_when_range_is_short():
    assert uniform_indices(10, 13, 8) == [10, 10, 11, 11, 11, 11, 12, 12]


@pytest.mark.parametrize(("duration_s", "expected"), [(5, 2), (9.9, 2), (10, 2), (20, 3), (35, 4), (149.9, 15), (150, 16), (200, 16)])
def test_clip_count_is_clamped_floor_plus_one(duration_s, expected):
    # clamp(floor(d / 10) + 1, 2, 16): 5 s -> 1 -> 2 (min); 35 s -> 4; 200 s -> 21 -> 16 (max)
    assert clip_count(duration_s) == expected


@pytest.mark.parametrize(("duration_s", "fps", "clips"), [(5, 8, 2), (35, 30, 4), (200, 25, 16)])
def test_clip_ranges_are_equal_contiguous_and_complete(duration_s, fps, clips):
    num_frames = duration_s * fps
    ranges = clip_ranges(num_frames, clip_count(duration_s))
    assert len(ranges) == clips
    assert ranges[0][0] == 0 and ranges[-1][1] == num_frames
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(ranges, ranges[1:], strict=False))
    lengths = [stop - start for start, stop in ranges]
    assert max(lengths) - min(lengths) <= 1


@pytest.mark.parametrize("num_sampled", [1, 2, 3, 8, 16, 17, 32])
def test_sparse_positions_are_a_uniform_subset(num_sampled):
    positions = sparse_positions(num_sampled)
    assert len(positions) == math.ceil(num_sampled / 3)
    assert positions == sorted(set(positions)) and positions[0] == 0
    assert all(0 <= position < num_sampled for position in positions)
    if num_sampled > 1 and len(positions) > 1:
        assert positions[-1] == num_sampled - 1
