"""Ray Data reads what Storage wrote, through the pyarrow filesystem Storage hands it."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from synpo.storage import join_uri


@pytest.mark.ray
def test_ray_data_reads_parquet_from_loopback_s3(s3_storage, ray_cluster):
    storage, bucket = s3_storage
    root = f"s3://{bucket}/pairs"
    for part in range(2):
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"id": [f"{part}-{row}" for row in range(5)], "score": [float(row) for row in range(5)]}), sink)
        storage.write_bytes(join_uri(root, f"part-{part}.parquet"), sink.getvalue().to_pybytes())
    filesystem, path = storage.arrow_filesystem(root)
    rows = ray.data.read_parquet(path, filesystem=filesystem).take_all()
    assert sorted(row["id"] for row in rows) == sorted(f"{part}-{row}" for part in range(2) for row in range(5))
