"""The model registry: atomic publish, verified load, aliases, rollback."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest

from technic_ml.errors import RegistryError
from technic_ml.predictors.estimators import ResultCountPredictor
from technic_ml.predictors.registry import ModelRegistry, compatibility_problems, library_versions
from tests.predictors.synthetic import table

MODEL = "result-count"


@pytest.fixture(scope="module")
def predictor():
    X, y, ts = table("count", "seed", n=300)
    return ResultCountPredictor(feature_set="seed", max_iter=20).fit(X, y, timestamps=ts)


def _manifest(p):
    return {"features": [str(f) for f in p.feature_names_in_], "params": p.get_params()}


def test_publish_then_load_round_trips(tmp_path, predictor):
    registry = ModelRegistry(tmp_path / "models")
    version = registry.publish(MODEL, predictor, _manifest(predictor))
    assert [v.version for v in registry.versions(MODEL)] == [version.version]
    assert manifest_keys(tmp_path, version.version) >= {"model_sha256", "serving_sha256", "serving_format"}
    X, _, _ = table("count", "seed", n=50, seed=9)
    rows = predictor._check_X(X, fitting=False)
    served, manifest = registry.load(MODEL, version.version)
    assert manifest["serving_bytes"] > 0
    assert type(served) is ResultCountPredictor and served.serving_only_
    for key, values in predictor.predict_batch(rows).items():
        np.testing.assert_array_equal(served.predict_batch(rows)[key], values)
    fitted, _ = registry.load(MODEL, version.version, fitted=True)
    assert (fitted.predict(X) == predictor.predict(X)).all()


def manifest_keys(root, version) -> set[str]:
    return set(json.loads((root / "models" / MODEL / "versions" / version / "manifest.json").read_text()))


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_tampered_model_file_is_refused_before_unpickling(tmp_path, predictor):
    registry = ModelRegistry(tmp_path)
    v = registry.publish(MODEL, predictor, _manifest(predictor)).version
    _flip_a_byte(tmp_path / MODEL / "versions" / v / "model.joblib")
    with pytest.raises(RegistryError, match=r"sha256 .* does not match .* refusing to unpickle"):
        registry.load(MODEL, v, fitted=True)


def test_tampered_serving_file_is_refused(tmp_path, predictor):
    registry = ModelRegistry(tmp_path)
    v = registry.publish(MODEL, predictor, _manifest(predictor)).version
    _flip_a_byte(tmp_path / MODEL / "versions" / v / "serving.npz")
    with pytest.raises(RegistryError, match=r"serving.npz sha256 .* does not match .* refusing to serve it"):
        registry.load(MODEL, v)


def _written_under(tmp_path, registry, version, **libraries) -> None:
    manifest_path = tmp_path / MODEL / "versions" / version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["libraries"].update(libraries)
    manifest_path.write_text(json.dumps(manifest))


def test_a_model_written_under_other_library_versions_serves_the_same_predictions(tmp_path, predictor):
    """An upgrade of scikit-learn, numba and numpy leaves the champion serving: its serving file
    is arrays and JSON. The pickle, which would run code written for other versions, is refused."""
    registry = ModelRegistry(tmp_path)
    v = registry.publish(MODEL, predictor, _manifest(predictor)).version
    _written_under(tmp_path, registry, v, **{"scikit-learn": "0.24.2", "numba": "0.50.0", "numpy": "1.19.5"})
    X, _, _ = table("count", "seed", n=200, seed=4)
    rows = predictor._check_X(X, fitting=False)
    served, _ = registry.load(MODEL, v)
    for key, values in predictor.predict_batch(rows).items():
        np.testing.assert_array_equal(served.predict_batch(rows)[key], values)
    assert [served.predict_one(x) for x in rows] == [predictor.predict_one(x) for x in rows]
    with pytest.raises(RegistryError, match=r"scikit-learn: model built with 0\.24\.2"):
        registry.load(MODEL, v, fitted=True)


def test_a_version_without_a_serving_file_loads_by_unpickling_under_its_versions(tmp_path, predictor):
    """Versions published before serving files existed keep loading, under the old rule."""
    registry = ModelRegistry(tmp_path)
    v = registry.publish(MODEL, predictor, _manifest(predictor)).version
    manifest_path = tmp_path / MODEL / "versions" / v / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for key in ("serving_file", "serving_format", "serving_sha256", "serving_bytes"):
        del manifest[key]
    manifest_path.write_text(json.dumps(manifest))
    (tmp_path / MODEL / "versions" / v / "serving.npz").unlink()
    assert [x.version for x in registry.versions(MODEL)] == [v]
    loaded, _ = registry.load(MODEL, v)
    assert not getattr(loaded, "serving_only_", False)
    _written_under(tmp_path, registry, v, **{"scikit-learn": "0.24.2"})
    with pytest.raises(RegistryError, match=r"scikit-learn: model built with 0\.24\.2"):
        registry.load(MODEL, v)


def test_a_half_written_serving_file_hides_the_version(tmp_path, predictor, caplog):
    registry = ModelRegistry(tmp_path)
    v = registry.publish(MODEL, predictor, _manifest(predictor)).version
    path = tmp_path / MODEL / "versions" / v / "serving.npz"
    path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level("WARNING"):
        assert registry.versions(MODEL) == []
    assert "serving.npz: 100 bytes of" in caplog.text


def test_a_damaged_version_is_not_listed_and_is_reported(tmp_path, predictor, caplog):
    registry = ModelRegistry(tmp_path)
    good = registry.publish(MODEL, predictor, _manifest(predictor)).version
    bad = registry.publish(MODEL, predictor, _manifest(predictor)).version
    (tmp_path / MODEL / "versions" / bad / "manifest.json").write_text("{not json")
    with caplog.at_level("WARNING"):
        assert [v.version for v in registry.versions(MODEL)] == [good]
    assert "skipping unreadable version" in caplog.text and bad in caplog.text


def test_compatibility_rules():
    here = library_versions()
    assert compatibility_problems(here, here) == []
    patch = dict(here, numpy=here["numpy"].rsplit(".", 1)[0] + ".999")
    assert compatibility_problems(patch, here) == []
    assert compatibility_problems({k: v for k, v in here.items() if k != "numba"}, here)


def test_unknown_schema_and_model_names_fail_closed(tmp_path, predictor):
    registry = ModelRegistry(tmp_path)
    v = registry.publish(MODEL, predictor, _manifest(predictor)).version
    path = tmp_path / MODEL / "versions" / v / "manifest.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"schema_version": 99}))
    with pytest.raises(RegistryError, match="schema_version 99"):
        registry.load(MODEL, v)
    with pytest.raises(RegistryError, match="model: received 'nope'"):
        registry.versions("nope")
    with pytest.raises(RegistryError, match="no champion yet"):
        registry.load(MODEL)


def test_promote_rollback_and_history(tmp_path, predictor):
    registry = ModelRegistry(tmp_path)
    a = registry.publish(MODEL, predictor, _manifest(predictor)).version
    b = registry.publish(MODEL, predictor, _manifest(predictor)).version
    c = registry.publish(MODEL, predictor, _manifest(predictor)).version
    registry.promote(MODEL, a)
    registry.promote(MODEL, b)
    registry.set_challenger(MODEL, c, "passed, but worse than the champion")
    assert registry.aliases(MODEL) == {"champion": b, "challenger": c}
    registry.promote(MODEL, c)
    assert registry.aliases(MODEL) == {"champion": c, "challenger": None}
    assert registry.rollback(MODEL) == b
    assert registry.rollback(MODEL) == a
    assert registry.aliases(MODEL)["champion"] == a
    with pytest.raises(RegistryError, match="only one champion so far"):
        registry.rollback(MODEL)
    history = registry.alias_history(MODEL)
    assert [(e["alias"], e["action"]) for e in history][:3] == [
        ("champion", "promote"),
        ("champion", "promote"),
        ("challenger", "set"),
    ]
    assert all(e["at"] and e["by"] for e in history)
    with pytest.raises(RegistryError, match="expected a published version"):
        registry.promote(MODEL, "20990101T000000000000Z-deadbeef")


def test_works_on_an_fsspec_filesystem(predictor):
    fs = fsspec.filesystem("memory")
    registry = ModelRegistry("/technic-test-registry", filesystem=fs)
    v = registry.publish(MODEL, predictor, _manifest(predictor)).version
    registry.promote(MODEL, v)
    loaded, _ = registry.load(MODEL)
    assert type(loaded) is ResultCountPredictor
    fs.rm("/technic-test-registry", recursive=True)


WRITER = textwrap.dedent(
    """
    import sys, time
    import technic_ml.predictors.registry as reg
    from tests.predictors.synthetic import table
    from technic_ml.predictors.estimators import ResultCountPredictor

    X, y, ts = table("count", "seed", n=300)
    p = ResultCountPredictor(feature_set="seed", max_iter=20).fit(X, y)
    registry = reg.ModelRegistry(sys.argv[1])
    real_write = registry._write

    def slow_write(path, data):
        if path.endswith("model.joblib"):
            # write half of the model, tell the test, then hang until killed
            with open(path, "wb") as fh:
                fh.write(data[: len(data) // 2])
            print("HALF", flush=True)
            time.sleep(60)
        real_write(path, data)

    registry._write = slow_write
    registry.publish("result-count", p, {"features": [str(f) for f in p.feature_names_in_]})
    """
)


def test_a_killed_writer_leaves_no_visible_version(tmp_path, predictor):
    registry = ModelRegistry(tmp_path)
    good = registry.publish(MODEL, predictor, _manifest(predictor)).version
    registry.promote(MODEL, good)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(repo)},
    )
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "HALF" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert "HALF" in line
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert list((tmp_path / MODEL / ".staging").iterdir())  # the half-written version is there...
    assert [v.version for v in registry.versions(MODEL)] == [good]  # ...but invisible
    _loaded, manifest = registry.load(MODEL)
    assert manifest["version"] == good
    newer = registry.publish(MODEL, predictor, _manifest(predictor)).version
    assert [v.version for v in registry.versions(MODEL)] == [good, newer]
