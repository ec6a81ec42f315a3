"""What the rest of the repository imports from the package exists: benchmarks, scripts, the
browser test and the example DAGs run outside `make test` (or need what it lacks, like selenium),
so a name moved in the package would otherwise break them unseen."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("benchmarks", "browser_tests", "scripts", "example_dags", "docs/samples")


def package_imports() -> list[tuple[str, str, str]]:
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.level == 0
                    and (node.module or "").startswith("airflow_provider_cronofy")
                ):
                    found += [(str(path.relative_to(ROOT)), node.module, a.name) for a in node.names]
    return found


def test_the_other_folders_import_from_the_package():
    assert {path.split("/")[0] for path, _, _ in package_imports()} >= {
        "benchmarks",
        "browser_tests",
        "scripts",
    }


@pytest.mark.parametrize(("path", "module", "name"), package_imports())
def test_every_name_imported_from_the_package_exists(path, module, name):
    imported = importlib.import_module(module)
    if not hasattr(imported, name):
        importlib.import_module(f"{module}.{name}")  # a submodule: raises if there is none
