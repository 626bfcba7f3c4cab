import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from technic_ml.fsio import write_parquet_atomic


def test_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "t.parquet"
    write_parquet_atomic(path, pa.table({"a": [1, 2]}))
    write_parquet_atomic(path, pa.table({"a": [3]}))
    assert pq.read_table(path).column("a").to_pylist() == [3]
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path):
    path = tmp_path / "t.parquet"
    write_parquet_atomic(path, pa.table({"a": [1]}))
    with pytest.raises(TypeError):
        write_parquet_atomic(path, pa.table({"a": [2]}), not_an_option=True)
    assert pq.read_table(path).column("a").to_pylist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
