import json

import pytest

from synpo.pairs import PairSchemaError, read_pairs, write_pairs
from synpo.toy.pairs import ALTERATIONS

GOOD = {"pair_id": "p1", "video": "s3://b/v1.mp4", "prompt": "Describe.", "chosen": "A red circle.", "rejected": "A blue circle."}


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_round_trip_local_and_s3(tmp_path, s3_storage, suffix):
    storage, bucket = s3_storage
    rows = [GOOD, {**GOOD, "pair_id": "p2", "chosen_score": 12.5, "rejected_score": 3.0}]
    for uri in (str(tmp_path / f"pairs{suffix}"), f"s3://{bucket}/pairs{suffix}"):
        write_pairs(rows, uri, storage)
        back = read_pairs(uri, storage)
        assert [row["pair_id"] for row in back] == ["p1", "p2"]
        assert back[1]["chosen_score"] == 12.5 and back[0]["ref_chosen_logp"] is None


def test_folder_of_parts(tmp_path):
    write_pairs([GOOD], str(tmp_path / "part-0.parquet"))
    write_pairs([{**GOOD, "pair_id": "p2"}], str(tmp_path / "part-1.jsonl"))
    assert [row["pair_id"] for row in read_pairs(str(tmp_path))] == ["p1", "p2"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**GOOD, "chosen": ""}, "row 1 (pair_id 'p2'): field 'chosen' must be a non-empty string"),
        ({**GOOD, "rejected": GOOD["chosen"]}, "chosen and rejected are the same text"),
        ({**GOOD, "chosen_score": "high"}, "field 'chosen_score' must be a number"),
        ({**GOOD, "colour": "red"}, "unknown field(s) ['colour']"),
        ({k: v for k, v in GOOD.items() if k != "video"}, "field 'video' must be a non-empty string, got None"),
    ],
)
def test_bad_rows_are_named(tmp_path, row, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**row, "pair_id": "p2"} if "pair_id" in row else row) + "\n")
    with pytest.raises(PairSchemaError) as error:
        read_pairs(str(path))
    assert message.replace("(pair_id 'p2')", "(pair_id 'p2')") in str(error.value) and str(path) in str(error.value)


def test_empty_duplicate_and_broken_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(PairSchemaError, match="no pairs"):
        read_pairs(str(empty))
    duplicate = tmp_path / "dup.jsonl"
    duplicate.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(PairSchemaError, match="row 1 repeats pair_id 'p1' of row 0"):
        read_pairs(str(duplicate))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(PairSchemaError, match="line 2 is not valid JSON"):
        read_pairs(str(broken))
    with pytest.raises(FileNotFoundError):
        read_pairs(str(tmp_path / "absent.parquet"))


def test_llamafactory_import_resolves_relative_videos(tmp_path):
    records = [
        {
            "conversations": [{"from": "human", "value": "<video>Describe the video in detail."}],
            "chosen": {"from": "gpt", "value": "A red circle moves left."},
            "rejected": {"from": "gpt", "value": "A blue square stays still."},
            "videos": ["clips/a.mp4"],
        }
    ]
    path = tmp_path / "prefs.json"
    path.write_text(json.dumps(records))
    (row,) = read_pairs(str(path))
    assert row["prompt"] == "Describe the video in detail."
    assert row["video"] == f"{tmp_path}/clips/a.mp4" and row["source"] == "llamafactory"
    path.write_text(json.dumps([{"conversations": [], "chosen": "x", "rejected": "y", "videos": []}]))
    with pytest.raises(PairSchemaError, match="record 0 needs exactly one video"):
        read_pairs(str(path))


def test_toy_pairs_alter_exactly_one_fact(toy_pair_rows):
    assert {row["source"] for row in toy_pair_rows} == {f"toy:{name}" for name in ALTERATIONS}
    for row in toy_pair_rows:
        assert row["chosen"] != row["rejected"]
        if row["source"] == "toy:invented_object":
            assert len(row["rejected"]) > len(row["chosen"])
        else:
            chosen_words, rejected_words = row["chosen"].split(), row["rejected"].split()
            differing = sum(a != b for a, b in zip(chosen_words, rejected_words, strict=False))
            assert 1 <= differing <= 8, row
