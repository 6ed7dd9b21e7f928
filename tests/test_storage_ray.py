"""Ray Data reads what Storage wrote, through the pyarrow filesystem Storage hands it."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synpo.storage import join_uri

ray = pytest.importorskip("ray")


@pytest.mark.ray
def test_ray_data_reads_parquet_from_loopback_s3(s3_storage, tmp_path):
    storage, bucket = s3_storage
    root = f"s3://{bucket}/pairs"
    for part in range(2):
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"id": [f"{part}-{row}" for row in range(5)], "score": [float(row) for row in range(5)]}), sink)
        storage.write_bytes(join_uri(root, f"part-{part}.parquet"), sink.getvalue().to_pybytes())
    filesystem, path = storage.arrow_filesystem(root)
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        rows = ray.data.read_parquet(path, filesystem=filesystem).take_all()
    finally:
        ray.shutdown()
    assert sorted(row["id"] for row in rows) == sorted(f"{part}-{row}" for part in range(2) for row in range(5))
