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
    loaded, manifest = registry.load(MODEL, version.version)
    assert type(loaded) is ResultCountPredictor
    assert manifest["model_sha256"] and manifest["libraries"]["scikit-learn"]
    X, _, _ = table("count", "seed", n=50, seed=9)
    assert (loaded.predict(X) == predictor.predict(X)).all()


def test_tampered_model_file_is_refused_before_unpickling(tmp_path, predictor):
    registry = ModelRegistry(tmp_path)
    v = registry.publish(MODEL, predictor, _manifest(predictor)).version
    path = tmp_path / MODEL / "versions" / v / "model.joblib"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=r"sha256 .* does not match .* refusing to unpickle"):
        registry.load(MODEL, v)


def test_incompatible_library_versions_are_refused(tmp_path, predictor):
    registry = ModelRegistry(tmp_path)
    v = registry.publish(MODEL, predictor, _manifest(predictor)).version
    manifest_path = tmp_path / MODEL / "versions" / v / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["libraries"]["scikit-learn"] = "0.24.2"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match=r"scikit-learn: model built with 0\.24\.2"):
        registry.load(MODEL, v)


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
