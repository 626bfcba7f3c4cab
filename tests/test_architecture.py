"""The layering rules of DEVELOPERS.md, checked mechanically."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY_FILES = sorted((REPO / "technic_ml").rglob("*.py"))


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_library_never_imports_prefect(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        assert not any(n == "prefect" or n.startswith("prefect.") for n in names), f"{path} imports {names}"


def test_layers_are_importable_from_a_clone():
    import deployments
    import flows
    import tasks

    for module in (tasks, flows, deployments):
        assert module.__doc__
