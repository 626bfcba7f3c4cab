"""The layering rules of DEVELOPERS.md, checked mechanically.

* The library (``technic_ml/``) never imports Prefect: not at the top of a module, not inside a
  function, not by ``importlib``.
* No import cycle between the library's packages (``technic_ml.api``, ``technic_ml.jobs``,
  ``technic_ml.history``...): an import placed inside a function to dodge a cycle still counts.

The checks read the source (``ast``), so they see every import, including the ones a test run
never executes; each check is first shown to fail on a tiny tree that breaks its rule.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "technic_ml"
LIBRARY_FILES = sorted(LIBRARY.rglob("*.py"))


def imported_modules(path: Path, package: str) -> Iterator[str]:
    """Every module ``path`` imports, absolute, wherever the import stands; ``from x import y``
    yields ``x`` and ``x.y`` (y may be a submodule), ``importlib.import_module("x")`` yields ``x``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def package_graph(root: Path) -> dict[str, set[str]]:
    """``{unit: units it imports}`` where a unit is a direct child of the ``root`` package (a module
    such as ``jobs`` or a package such as ``api``); imports within one unit are not edges."""
    name = root.name
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts == ("__init__",):
            continue
        unit = parts[0]
        package = ".".join([name, *parts[:-1]])
        targets = graph.setdefault(unit, set())
        for module in imported_modules(path, package):
            pieces = module.split(".")
            # ``from technic_ml import __version__`` names no unit: only modules and packages count.
            if (
                pieces[0] == name
                and len(pieces) > 1
                and pieces[1] != unit
                and ((root / pieces[1]).is_dir() or (root / f"{pieces[1]}.py").is_file())
            ):
                targets.add(pieces[1])
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def prefect_imports(path: Path, package: str) -> list[str]:
    return [m for m in imported_modules(path, package) if m == "prefect" or m.startswith("prefect.")]


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root / next(iter(files)).split("/")[0]


# -- the checks fail where they should ----------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        (  # the jobs <-> api cycle this test was written against, hidden inside functions
            {
                "lib/__init__.py": "",
                "lib/jobs.py": "def f():\n    from lib.api.ledger import Ledger\n",
                "lib/api/__init__.py": "",
                "lib/api/ledger.py": "class Ledger: ...\n",
                "lib/api/service.py": "def g():\n    from lib.jobs import f\n",
            },
            ["api", "jobs", "api"],
        ),
        (  # relative imports, three units
            {
                "lib/__init__.py": "",
                "lib/a.py": "from . import b\n",
                "lib/b.py": "from .c import x\n",
                "lib/c/__init__.py": "from ..a import y\nx = 1\n",
            },
            ["a", "b", "c", "a"],
        ),
        (  # importlib counts too
            {
                "lib/__init__.py": "",
                "lib/a.py": "import lib.b\n",
                "lib/b.py": "import importlib\nimportlib.import_module('lib.a')\n",
            },
            ["a", "b", "a"],
        ),
        (  # a layered tree: imports within a unit and downward ones are fine
            {
                "lib/__init__.py": "",
                "lib/a.py": "from lib.b import x\nfrom lib import c\n",
                "lib/b/__init__.py": "from lib.b.inner import x\nfrom lib.c import z\n",
                "lib/b/inner.py": "from lib.b import y\nx = 1\n",
                "lib/c.py": "import os\nz = 1\n",
            },
            None,
        ),
    ],
    ids=["hidden-in-functions", "relative", "importlib", "layered"],
)
def test_the_cycle_check_finds_cycles_between_packages(tmp_path, files, cycle):
    root = _write(tmp_path, files)
    assert find_cycle(package_graph(root)) == cycle


@pytest.mark.parametrize(
    "source",
    [
        "import prefect\n",
        "from prefect import flow\n",
        "def f():\n    from prefect.logging import get_run_logger\n",
        "import importlib\nimportlib.import_module('prefect.context')\n",
        "x = __import__('prefect')\n",
    ],
)
def test_the_prefect_check_finds_every_form_of_import(tmp_path, source):
    path = tmp_path / "mod.py"
    path.write_text(source)
    assert prefect_imports(path, "lib")


# -- the rules hold on the library ----------------------------------------------------------------


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_library_never_imports_prefect(path):
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    assert prefect_imports(path, package) == [], f"{path.relative_to(REPO)} imports Prefect"


def test_library_packages_import_each_other_without_cycles():
    graph = package_graph(LIBRARY)
    assert {"api", "jobs", "history", "predictors"} <= set(graph)  # the graph is really read
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle between library packages: {' -> '.join(cycle)}"


def test_importing_the_whole_library_loads_no_prefect():
    # The static check's runtime twin: a dependency of ours could pull Prefect in.
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in LIBRARY_FILES
        if p.name != "__main__.py"  # runs the command line
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_layers_are_importable_from_a_clone():
    import deployments
    import flows
    import tasks

    for module in (tasks, flows, deployments):
        assert module.__doc__


def test_the_module_map_names_every_library_module():
    import technic_ml

    units = {
        p.stem if p.is_file() else p.name
        for p in LIBRARY.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    assert {"api", "history", "jobs", "stores"} <= units
    missing = sorted(u for u in units if f"``{u}``" not in technic_ml.__doc__)
    assert missing == []
