"""The model registry: versioned, verified predictors with ``champion``/``challenger`` aliases.

Layout under the registry root (a local directory by default, ``<data_root>/models``; or any
pyarrow or fsspec filesystem)::

    <model>/versions/<version>/serving.npz      what serving needs, as plain arrays (``portable``)
    <model>/versions/<version>/model.joblib     the fitted predictor (for refitting and inspection)
    <model>/versions/<version>/manifest.json    schema version, features, library versions, training
                                                window and data hash, metrics, sha256 of both files
    <model>/aliases/<time>-<id>.json            append-only alias events (promote, challenger, rollback)
    <model>/.staging/                           versions being written (never read)

* **Publish is atomic**: a version is written completely under ``.staging`` and then moved into
  ``versions/`` in one rename (atomic on a local filesystem). Readers only list ``versions/``, and
  a version counts only when its manifest is there and its model file has the manifest's size, so
  even on an object store without atomic renames a half-copied version is invisible.
* **Load fails closed**: ``load`` checks the manifest's schema version, then the sha256 of the
  file it reads; anything unexpected raises ``RegistryError``. By default it reads the portable
  serving file (arrays and JSON, no pickle: :mod:`.portable`), so a champion keeps serving after
  scikit-learn, numba or numpy are upgraded. ``load(..., fitted=True)`` unpickles the joblib file,
  and only under the library versions it was pickled with (scikit-learn and numba exactly, numpy
  and Python by minor version): unpickling runs code. Versions published before serving files
  existed are loaded from their joblib file under the same rule.
* **Aliases** are derived from the event log: the current holder of an alias is the last event
  for it, and ``rollback`` returns ``champion`` to the holder before the current one (promotions
  push, rollbacks pop), so "who held champion and when" is never overwritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import io
import json
import logging
import platform
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pyarrow.fs as pafs

from technic_ml import __version__, objectstore
from technic_ml.errors import RegistryError
from technic_ml.fsio import exclusive_lock, fsync_dir, write_bytes_atomic
from technic_ml.predictors import portable

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MODEL_FILE = "model.joblib"
SERVING_FILE = "serving.npz"
MANIFEST_FILE = "manifest.json"
ALIASES = ("champion", "challenger")
MODEL_NAMES = {"count": "result-count", "duration": "duration"}


def library_versions() -> dict[str, str]:
    import numba
    import numpy
    import sklearn

    return {
        "technic_ml": __version__,
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "joblib": joblib.__version__,
    }


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def compatibility_problems(recorded: dict[str, str], current: dict[str, str] | None = None) -> list[str]:
    """Why a model pickled with ``recorded`` library versions cannot be loaded here (empty: it can)."""
    current = current or library_versions()
    problems = []
    for lib, same in (("scikit-learn", str), ("numba", str), ("numpy", _minor), ("python", _minor)):
        want, have = recorded.get(lib), current.get(lib)
        if want is None:
            problems.append(f"{lib}: the manifest does not record its version")
        elif same(want) != same(have):
            problems.append(f"{lib}: model built with {want}, this environment has {have}")
    return problems


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: str
    created_at: str
    manifest: dict[str, Any]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class ModelRegistry:
    """See the module docstring. ``root`` is a path or a URI; ``filesystem`` a pyarrow or fsspec one."""

    def __init__(self, root: str | Path, *, filesystem: Any = None):
        self._fsspec: Any = None
        if filesystem is None:
            text = str(root)
            if "://" in text:
                filesystem, text = pafs.FileSystem.from_uri(text)
            else:
                filesystem, text = pafs.LocalFileSystem(), str(Path(text).expanduser().absolute())
        elif not isinstance(filesystem, pafs.FileSystem):
            # An fsspec filesystem (memory://, s3fs, gcsfs...) through pyarrow's adapter; locks are
            # lease objects taken by conditional create on it (technic_ml.objectstore).
            self._fsspec = filesystem
            filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
            text = str(root)
        else:
            text = str(root)
        self.fs: pafs.FileSystem = filesystem
        self.root = text.rstrip("/")
        self.local = isinstance(filesystem, pafs.LocalFileSystem)

    def __repr__(self) -> str:
        return f"ModelRegistry({self.root!r})"

    # -- paths -----------------------------------------------------------------------------------

    def _check_model(self, model: str) -> str:
        if model not in MODEL_NAMES.values():
            raise RegistryError(f"model: received {model!r}; expected one of {sorted(MODEL_NAMES.values())}")
        return model

    def _dir(self, model: str, *parts: str) -> str:
        return "/".join([self.root, self._check_model(model), *parts])

    def _exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def _read(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as fh:
            return fh.read()

    def _write(self, path: str, data: bytes) -> None:
        parent = path.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        if self.local:
            write_bytes_atomic(Path(path), data)
        else:
            with self.fs.open_output_stream(path) as fh:
                fh.write(data)

    @contextlib.contextmanager
    def _flock(self, model: str, name: str):
        """An exclusive lock of ``model`` between processes: a lock file on a local filesystem, a
        lease object on an fsspec one (several machines). A pyarrow remote filesystem has no
        conditional create through this code: there, publishers must not run at once."""
        if self.local:
            with exclusive_lock(Path(self._dir(model), name)):
                yield
        elif self._fsspec is not None:
            with objectstore.lease(self._fsspec, self._dir(model, name)):
                yield
        else:
            yield

    def _locked(self, model: str):
        """Serialize alias read-modify-write between processes."""
        return self._flock(model, ".lock")

    def publishing(self, model: str):
        """Hold one publisher at a time for ``model``: check the champion, publish, set an alias.

        A separate lock file from the alias lock, so the calls inside may take that one.
        """
        return self._flock(self._check_model(model), ".publish.lock")

    # -- versions --------------------------------------------------------------------------------

    def publish(self, model: str, predictor: Any, manifest: dict[str, Any]) -> ModelVersion:
        """Write a new version atomically (no alias changes; see ``promote`` and ``set_challenger``)."""
        self._check_model(model)
        buffer = io.BytesIO()
        joblib.dump(predictor, buffer)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        # Another kind of object (a stand-in in tests) has no serving file: it loads by unpickling.
        serving = portable.dumps(predictor) if portable.describes(predictor) else None
        created = _now()
        version = f"{created:%Y%m%dT%H%M%S%f}Z-{digest[:8]}"
        full = {
            **manifest,
            "schema_version": SCHEMA_VERSION,
            "model": model,
            "version": version,
            "created_at": created.isoformat(),
            "created_by": _who(),
            "estimator": f"{type(predictor).__module__}.{type(predictor).__qualname__}",
            "libraries": library_versions(),
            "model_file": MODEL_FILE,
            "model_sha256": digest,
            "model_bytes": len(data),
        }
        if serving is not None:
            full |= {
                "serving_file": SERVING_FILE,
                "serving_format": portable.FORMAT,
                "serving_sha256": hashlib.sha256(serving).hexdigest(),
                "serving_bytes": len(serving),
            }
        final = self._dir(model, "versions", version)
        # An object store has no directory rename: there the files go straight to their place,
        # manifest last, and a version without its manifest (or with short files) is not listed.
        staging = self._dir(model, ".staging", f"{version}-{uuid.uuid4().hex[:8]}") if self.local else final
        self.fs.create_dir(staging, recursive=True)
        self._write(f"{staging}/{MODEL_FILE}", data)
        if serving is not None:
            self._write(f"{staging}/{SERVING_FILE}", serving)
        self._write(f"{staging}/{MANIFEST_FILE}", (json.dumps(full, indent=2, default=str) + "\n").encode())
        if self.local:
            self.fs.create_dir(self._dir(model, "versions"), recursive=True)
            self.fs.move(staging, final)
            fsync_dir(Path(self._dir(model, "versions")))
        return ModelVersion(model, version, full["created_at"], full)

    def versions(self, model: str) -> list[ModelVersion]:
        """Complete versions, oldest first (incomplete or unreadable ones are skipped)."""
        base = self._dir(model, "versions")
        if not self._exists(base):
            return []
        out = []
        for info in self.fs.get_file_info(pafs.FileSelector(base)):
            if info.type != pafs.FileType.Directory:
                continue
            try:
                manifest = json.loads(self._read(f"{info.path}/{MANIFEST_FILE}"))
                sizes = {
                    name: (self.fs.get_file_info(f"{info.path}/{name}").size, manifest.get(key))
                    for name, key in ((MODEL_FILE, "model_bytes"), (SERVING_FILE, "serving_bytes"))
                    if key in manifest or name == MODEL_FILE
                }
            except (OSError, ValueError) as exc:
                # Locally a version appears whole or not at all, so this is damage: say so, don't list it.
                log.warning("%s: skipping unreadable version %s (%s)", model, info.path, exc)
                continue
            short = {name: s for name, s in sizes.items() if s[0] != s[1]}
            if short:
                log.warning(
                    "%s: skipping incomplete version %s (%s)",
                    model,
                    info.path,
                    "; ".join(f"{name}: {have} bytes of {want}" for name, (have, want) in short.items()),
                )
                continue
            out.append(ModelVersion(model, manifest["version"], manifest["created_at"], manifest))
        return sorted(out, key=lambda v: v.version)

    def manifest(self, model: str, version: str) -> dict[str, Any]:
        path = self._dir(model, "versions", self.resolve(model, version), MANIFEST_FILE)
        try:
            return json.loads(self._read(path))
        except FileNotFoundError:
            raise RegistryError(f"version: received {version!r}; no such version of {model}") from None
        except ValueError as exc:
            raise RegistryError(f"{model} {version}: manifest is not valid JSON ({exc})") from None

    def resolve(self, model: str, ref: str) -> str:
        """A version id for ``ref`` (an alias name or a version id)."""
        if ref in ALIASES:
            version = self.aliases(model).get(ref)
            if version is None:
                raise RegistryError(
                    f"{model}: no {ref} yet; publish a validated model first (technic-ml train)"
                )
            return version
        return ref

    def load(self, model: str, ref: str = "champion", *, fitted: bool = False) -> tuple[Any, dict[str, Any]]:
        """(predictor, manifest) after verifying the manifest and the sha256 of the file read.

        The portable serving file by default (serving only, any library versions); ``fitted``: the
        pickled scikit-learn model, under the library versions it was written with only.
        """
        version = self.resolve(model, ref)
        manifest = self.manifest(model, version)
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise RegistryError(
                f"{model} {version}: manifest schema_version {manifest.get('schema_version')!r};"
                f" expected {SCHEMA_VERSION}"
            )
        if manifest.get("model") != model or manifest.get("version") != version:
            raise RegistryError(
                f"{model} {version}: the manifest names"
                f" {manifest.get('model')!r} {manifest.get('version')!r};"
                " expected this model and version (a copied or renamed directory)"
            )
        if not fitted and "serving_sha256" in manifest:
            return self._check_loaded(model, version, manifest, self._load_serving(model, version, manifest))
        problems = compatibility_problems(manifest.get("libraries", {}))
        if problems:
            raise RegistryError(
                f"{model} {version}: incompatible environment, refusing to unpickle: " + "; ".join(problems)
            )
        data = self._verified(model, version, manifest, MODEL_FILE, "model_sha256", "unpickle it")
        return self._check_loaded(model, version, manifest, joblib.load(io.BytesIO(data)))

    def _verified(
        self, model: str, version: str, manifest: dict, name: str, key: str, refusing: str
    ) -> bytes:
        """The bytes of a version's file, only when their sha256 is the manifest's ``key``."""
        try:
            data = self._read(self._dir(model, "versions", version, name))
        except FileNotFoundError:
            raise RegistryError(f"{model} {version}: {name} is missing") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest.get(key):
            raise RegistryError(
                f"{model} {version}: {name} sha256 {digest[:16]}... does not match the manifest's"
                f" {str(manifest.get(key))[:16]}...; the file was modified, refusing to {refusing}"
            )
        return data

    def _load_serving(self, model: str, version: str, manifest: dict[str, Any]) -> Any:
        data = self._verified(model, version, manifest, SERVING_FILE, "serving_sha256", "serve it")
        try:
            return portable.loads(data)
        except ValueError as exc:
            raise RegistryError(f"{model} {version}: {exc}") from None

    @staticmethod
    def _check_loaded(model: str, version: str, manifest: dict[str, Any], predictor: Any) -> tuple[Any, dict]:
        expected = manifest.get("estimator")
        got = f"{type(predictor).__module__}.{type(predictor).__qualname__}"
        if got != expected:
            raise RegistryError(f"{model} {version}: loaded a {got}; expected {expected}")
        features = [str(f) for f in getattr(predictor, "feature_names_in_", [])]
        if features != list(manifest.get("features", [])):
            raise RegistryError(f"{model} {version}: model features {features} differ from the manifest's")
        return predictor, manifest

    # -- aliases ---------------------------------------------------------------------------------

    def alias_history(self, model: str) -> list[dict[str, Any]]:
        base = self._dir(model, "aliases")
        if not self._exists(base):
            return []
        infos = [i for i in self.fs.get_file_info(pafs.FileSelector(base)) if i.path.endswith(".json")]
        events = []
        for info in sorted(infos, key=lambda i: i.path.rsplit("/", 1)[1]):
            try:
                events.append(json.loads(self._read(info.path)))
            except ValueError as exc:
                raise RegistryError(f"{model}: alias event {info.path} is not valid JSON ({exc})") from None
        return events

    @staticmethod
    def _replay(events: list[dict[str, Any]]) -> tuple[list[str], str | None]:
        champions: list[str] = []
        challenger = None
        for e in events:
            if e["alias"] == "champion":
                if e["action"] == "rollback":
                    champions.pop()
                else:
                    champions.append(e["version"])
            elif e["alias"] == "challenger":
                challenger = e["version"]
        return champions, challenger

    def aliases(self, model: str) -> dict[str, str | None]:
        champions, challenger = self._replay(self.alias_history(model))
        return {"champion": champions[-1] if champions else None, "challenger": challenger}

    def _event(self, model: str, alias: str, action: str, version: str | None, reason: str) -> dict[str, Any]:
        at = _now()
        event = {
            "alias": alias,
            "action": action,
            "version": version,
            "at": at.isoformat(),
            "by": _who(),
            "reason": reason,
        }
        name = f"{at:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}.json"
        self._write(self._dir(model, "aliases", name), (json.dumps(event) + "\n").encode())
        return event

    def _require_version(self, model: str, version: str) -> None:
        if version not in {v.version for v in self.versions(model)}:
            raise RegistryError(f"version: received {version!r}; expected a published version of {model}")

    def set_challenger(self, model: str, version: str, reason: str) -> dict[str, Any]:
        with self._locked(model):
            self._require_version(model, version)
            return self._event(model, "challenger", "set", version, reason)

    def promote(self, model: str, version: str, reason: str = "promoted") -> dict[str, Any]:
        """Make ``version`` the champion (the previous one stays in history for rollback)."""
        with self._locked(model):
            self._require_version(model, version)
            champions, challenger = self._replay(self.alias_history(model))
            if champions and champions[-1] == version:
                raise RegistryError(f"{model}: {version} is already the champion")
            event = self._event(model, "champion", "promote", version, reason)
            if challenger == version:
                self._event(model, "challenger", "clear", None, f"promoted to champion: {reason}")
            return event

    def rollback(self, model: str, reason: str = "rollback") -> str:
        """Return ``champion`` to the version that held it before the current one; returns it."""
        with self._locked(model):
            champions, _ = self._replay(self.alias_history(model))
            if len(champions) < 2:
                raise RegistryError(
                    f"{model}: no previous champion to roll back to"
                    + (
                        " (no champion yet)"
                        if not champions
                        else f" (only one champion so far: {champions[0]})"
                    )
                )
            previous = champions[-2]
            self._event(model, "champion", "rollback", previous, f"{reason} (from {champions[-1]})")
            return previous


def registry_summary(registry: ModelRegistry) -> dict[str, dict]:
    """Per target: the champion and challenger now, with the champion's validation on the future."""
    out = {}
    for target, model in MODEL_NAMES.items():
        aliases = registry.aliases(model)
        entry: dict[str, Any] = {"champion": aliases.get("champion"), "challenger": aliases.get("challenger")}
        if entry["champion"]:
            manifest = registry.manifest(model, entry["champion"])
            validation = manifest.get("validation") or {}
            pooled = validation.get("pooled") or {}
            per_fold = validation.get("per_fold") or []
            entry.update(
                chosen=validation.get("chosen"),
                mae=pooled.get("mae"),
                r2=pooled.get("r2"),
                coverage=pooled.get("coverage"),
                min_fold_coverage=min((f["coverage"] for f in per_fold), default=None),
                stated_coverage=manifest.get("coverage"),
                folds=validation.get("folds"),
                gates=validation.get("gates"),
                training_window=manifest.get("training_window"),
            )
        out[target] = entry
    return out
