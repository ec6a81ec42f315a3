"""`make dist`: check what `python -m build` wrote to dist/, by reading the archives (not by eye).

- one wheel and one sdist, both of the version in ``airflow_provider_cronofy/__init__.py``;
- the wheel holds ``LICENSE`` (byte for byte the repository's), ``py.typed``, the provider entry
  point, and the metadata users and Airflow read (license, Python floor, the Airflow floor);
- the wheel holds no tests and nothing but the package: no ``tests/``, ``test_*.py``,
  ``conftest.py``, example DAGs, benchmarks or scripts;
- the sdist holds ``LICENSE`` too.

Standard library only (it runs in the tools venv). Exits non-zero naming every problem.
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_cronofy"


def expected_version() -> str:
    text = (ROOT / PACKAGE / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if not match:
        raise SystemExit("no __version__ in airflow_provider_cronofy/__init__.py")
    return match.group(1)


def check_wheel(wheel: Path, version: str) -> list[str]:
    problems: list[str] = []
    license_text = (ROOT / "LICENSE").read_bytes()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = f"airflow_provider_cronofy-{version}.dist-info"
        outside = [n for n in names if not (n.startswith(f"{PACKAGE}/") or n.startswith(f"{dist_info}/"))]
        if outside:
            problems.append(f"wheel holds files outside the package and its dist-info: {outside}")
        tests = [
            n
            for n in names
            if "/tests/" in f"/{n}"
            or Path(n).name.startswith("test_")
            or Path(n).name == "conftest.py"
            or n.split("/")[0] in ("tests", "example_dags", "benchmarks", "scripts")
        ]
        if tests:
            problems.append(f"wheel holds tests or repository tooling: {tests}")
        if f"{PACKAGE}/py.typed" not in names:
            problems.append("wheel has no airflow_provider_cronofy/py.typed (type hints would be ignored)")
        licenses = [n for n in names if n.startswith(f"{dist_info}/licenses/") and n.endswith("LICENSE")]
        if not licenses:
            problems.append(f"wheel has no {dist_info}/licenses/LICENSE")
        elif archive.read(licenses[0]) != license_text:
            problems.append(f"{licenses[0]} differs from the repository's LICENSE")
        metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    if metadata["Version"] != version:
        problems.append(f"wheel metadata says version {metadata['Version']}, __init__ says {version}")
    if metadata["License-Expression"] != "Apache-2.0":
        problems.append(f"License-Expression is {metadata['License-Expression']!r}, not 'Apache-2.0'")
    if metadata["Requires-Python"] != ">=3.10":
        problems.append(f"Requires-Python is {metadata['Requires-Python']!r}, not '>=3.10'")
    requires = metadata.get_all("Requires-Dist") or []
    if not any(re.fullmatch(r"apache-airflow\s*>=\s*2\.11", r.split(";")[0].strip()) for r in requires):
        problems.append(f"no 'apache-airflow>=2.11' among Requires-Dist: {requires}")
    if "[apache_airflow_provider]" not in entry_points or "get_provider_info" not in entry_points:
        problems.append("entry point apache_airflow_provider -> get_provider_info is missing")
    modules = sorted(n for n in names if n.endswith(".py"))
    print(f"{wheel.name}: {len(names)} files, {len(modules)} modules")
    return problems


def check_sdist(sdist: Path, version: str) -> list[str]:
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    top = f"airflow_provider_cronofy-{version}"
    if f"{top}/LICENSE" not in names:
        return [f"sdist has no {top}/LICENSE"]
    print(f"{sdist.name}: {len(names)} entries")
    return []


def main(argv: list[str]) -> int:
    dist = Path(argv[1]) if len(argv) > 1 else ROOT / "dist"
    version = expected_version()
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    problems: list[str] = []
    if [w.name for w in wheels] != [f"airflow_provider_cronofy-{version}-py3-none-any.whl"]:
        problems.append(
            f"expected one pure-Python wheel of version {version}, found {[w.name for w in wheels]}"
        )
    if [s.name for s in sdists] != [f"airflow_provider_cronofy-{version}.tar.gz"]:
        problems.append(f"expected one sdist of version {version}, found {[s.name for s in sdists]}")
    for wheel in wheels:
        problems += check_wheel(wheel, version)
    for sdist in sdists:
        problems += check_sdist(sdist, version)
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    if not problems:
        print(f"dist/ is a clean {version} release")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
