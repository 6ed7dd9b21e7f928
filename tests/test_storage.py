import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synpo.storage import ObjectNotFound, Storage, StorageConfig, StorageError, join_uri, parse_uri


def roots(tmp_path, s3_storage):
    storage, bucket = s3_storage
    return [(Storage(), str(tmp_path / "local")), (Storage(), f"file://{tmp_path}/file-uri"), (storage, f"s3://{bucket}/data")]


@pytest.mark.parametrize("kind", ["local", "file", "s3"])
def test_round_trip_exists_and_list(tmp_path, s3_storage, kind):
    storage, root = dict(zip(["local", "file", "s3"], roots(tmp_path, s3_storage), strict=True))[kind]
    payload = bytes(range(256)) * 100
    storage.write_bytes(join_uri(root, "b/clip.mp4"), payload)
    storage.write_text(join_uri(root, "a.json"), '{"x": 1}')
    storage.write_text(join_uri(root, "_SUCCESS"), "")
    assert storage.read_bytes(join_uri(root, "b/clip.mp4")) == payload
    assert storage.read_text(join_uri(root, "a.json")) == '{"x": 1}'
    assert storage.exists(join_uri(root, "a.json"))
    assert not storage.exists(join_uri(root, "missing.json"))
    assert storage.list(root) == [join_uri(root, "a.json"), join_uri(root, "b/clip.mp4")]
    assert storage.list(root, suffixes=(".MP4",)) == [join_uri(root, "b/clip.mp4")]
    with pytest.raises(ObjectNotFound, match="missing.json"):
        storage.read_bytes(join_uri(root, "missing.json"))
    storage.delete(join_uri(root, "a.json"))
    storage.delete(join_uri(root, "a.json"))  # deleting what is gone is not an error
    assert storage.list(root) == [join_uri(root, "b/clip.mp4")]


def test_s3_listing_paginates(s3_storage):
    storage, bucket = s3_storage
    client = storage._s3()
    for index in range(1005):  # more than one 1000-key page
        client.put_object(Bucket=bucket, Key=f"many/{index:05d}.txt", Body=b"x")
    listed = storage.list(f"s3://{bucket}/many")
    assert len(listed) == 1005 and listed[0].endswith("00000.txt") and listed[-1].endswith("01004.txt")


def test_local_write_is_atomic_under_concurrent_readers(tmp_path):
    storage = Storage()
    target = str(tmp_path / "obj.bin")
    old, new = b"a" * 2_000_000, b"b" * 3_000_000
    storage.write_bytes(target, old)
    seen: set[int] = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(len(storage.read_bytes(target)))

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(20):
        storage.write_bytes(target, new)
        storage.write_bytes(target, old)
    stop.set()
    thread.join()
    assert seen <= {len(old), len(new)}
    assert [path.name for path in tmp_path.iterdir()] == ["obj.bin"]  # no temp file left behind


def test_failed_local_write_leaves_old_object_and_no_temp(tmp_path):
    storage = Storage()
    target = str(tmp_path / "obj.txt")
    storage.write_text(target, "old")

    with pytest.raises(TypeError):
        storage.write_bytes(target, object())  # not bytes: the write fails inside the temp file
    assert storage.read_text(target) == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["obj.txt"]


def test_s3_writes_are_whole_objects(s3_storage):
    storage, bucket = s3_storage
    uri = f"s3://{bucket}/obj.bin"
    storage.write_bytes(uri, b"x" * 5_000_000)
    head = storage._s3().head_object(Bucket=bucket, Key="obj.bin")
    assert head["ContentLength"] == 5_000_000
    with pytest.raises(StorageError, match="names a prefix"):
        storage.write_bytes(f"s3://{bucket}/folder/", b"x")


def test_arrow_filesystem_reads_what_storage_wrote(tmp_path, s3_storage):
    storage, bucket = s3_storage
    table = pa.table({"id": [1, 2, 3], "caption": ["a", "b", "c"]})
    for root in (str(tmp_path), f"s3://{bucket}/tables"):
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        uri = join_uri(root, "t.parquet")
        storage.write_bytes(uri, sink.getvalue().to_pybytes())
        filesystem, path = storage.arrow_filesystem(uri)
        assert pq.read_table(path, filesystem=filesystem).equals(table)


def test_config_falls_back_to_aws_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    resolved = StorageConfig().resolved()
    assert (resolved.endpoint_url, resolved.region, resolved.access_key_id, resolved.secret_access_key) == (
        "http://127.0.0.1:9", "eu-west-3", "env-key", "env-secret"
    )
    explicit = StorageConfig(endpoint_url="http://127.0.0.1:10", region="us-west-2").resolved()
    assert (explicit.endpoint_url, explicit.region) == ("http://127.0.0.1:10", "us-west-2")


def test_uri_parsing_and_errors(tmp_path):
    assert parse_uri("s3://bucket/a/b.mp4").key == "a/b.mp4"
    assert parse_uri(f"file://{tmp_path}/x").path == f"{tmp_path}/x"
    assert parse_uri("relative/x").path.endswith("relative/x")
    for bad, pattern in [("gs://b/k", "unsupported URI scheme 'gs'"), ("s3:///key", "has no bucket"), ("", "empty storage URI")]:
        with pytest.raises(StorageError, match=pattern):
            parse_uri(bad)
    with pytest.raises(ObjectNotFound):
        Storage().list(str(tmp_path / "nope"))


def test_storage_pickles_without_its_client(s3_storage):
    import pickle

    storage, bucket = s3_storage
    storage.write_text(f"s3://{bucket}/k", "v")
    clone = pickle.loads(pickle.dumps(storage))
    assert clone._s3_client is None and clone.read_text(f"s3://{bucket}/k") == "v"


def test_video_source_and_absolute_paths(tmp_path, s3_storage, monkeypatch):
    from synpo.storage import absolute_tracking_uri, absolute_uri

    storage, bucket = s3_storage
    storage.write_bytes(f"s3://{bucket}/v.mp4", b"bytes")
    (tmp_path / "v.mp4").write_bytes(b"bytes")
    assert storage.local_path_or_bytes(f"s3://{bucket}/v.mp4") == b"bytes"
    assert storage.local_path_or_bytes(f"file://{tmp_path}/v.mp4") == f"{tmp_path}/v.mp4"  # readers seek in local files
    monkeypatch.chdir(tmp_path)
    assert absolute_uri("runs/x") == f"{tmp_path}/runs/x" and absolute_uri("s3://b/k") == "s3://b/k" and absolute_uri(None) is None
    assert absolute_tracking_uri("sqlite:///runs/m.db") == f"sqlite:///{tmp_path}/runs/m.db"
    assert absolute_tracking_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert absolute_tracking_uri("http://mlflow:5000") == "http://mlflow:5000"


def test_an_mlflow_artifact_root_is_made_absolute_only_when_it_is_a_local_folder(tmp_path, monkeypatch):
    from synpo.config.sections import MlflowSettings

    monkeypatch.chdir(tmp_path)
    for uri in ("mlflow-artifacts:/synpo", "file:/abs/mlruns", "s3://bucket/mlflow", None):  # the first two have no "//"
        assert MlflowSettings(artifact_location=uri).with_absolute_paths().artifact_location == uri
    assert MlflowSettings(artifact_location="mlartifacts").with_absolute_paths().artifact_location == f"{tmp_path}/mlartifacts"


def test_a_sqlite_stores_artifacts_go_beside_the_database_not_into_the_working_folder(tmp_path, monkeypatch):
    from synpo.config.sections import MlflowSettings

    monkeypatch.chdir(tmp_path)
    assert MlflowSettings(tracking_uri="sqlite:///runs/m.db").artifact_root() == f"{tmp_path}/runs/mlartifacts"
    assert MlflowSettings(tracking_uri="sqlite:///runs/m.db", artifact_location="s3://b/a").artifact_root() == "s3://b/a"
    assert MlflowSettings(tracking_uri="http://mlflow:5000").artifact_root() is None  # the server's own default
    settings = MlflowSettings(tracking_uri="sqlite:///runs/m.db", experiment="e")
    import mlflow

    experiment = mlflow.MlflowClient(settings.tracking_uri).get_experiment(settings.experiment_id())
    assert experiment.artifact_location == f"{tmp_path}/runs/mlartifacts" and not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_get_the_umasks_mode_not_mkstemps_0600(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        Storage().write_text(str(tmp_path / "report.html"), "<html/>")
    finally:
        os.umask(previous)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == mode
