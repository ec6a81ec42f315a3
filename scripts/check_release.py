"""`make release-check`: install the built wheel into a clean venv per Airflow line and check it there.

For each line: a new venv (``build/release-check/<line>``, made afresh each run), the wheel from
dist/ (not the checkout, not editable) and the providers the example DAGs use, resolved within
that line's lock (``-c requirements/airflow-<line>.txt``, so the run is reproducible and served
from uv's cache), nothing else: no pytest. Then ``scripts/release_line_check.py`` runs with the
venv's Python from a folder outside the checkout.

On Airflow 3.0 the venv also gets apache-airflow-providers-fab: 3.0 shows a provider's form
fields only when wtforms is installed (see airflow_provider_cronofy/hooks/connection_form.py).

Standard library only (it runs in the tools venv). Prints the time each line took.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAG_PROVIDERS = [
    "apache-airflow-providers-common-sql",
    "apache-airflow-providers-sqlite",
    "apache-airflow-providers-standard",
]
FORM_PROVIDERS = {"3.0": ["apache-airflow-providers-fab"]}


def run(command: list[str], **kwargs: object) -> None:
    result = subprocess.run(command, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise SystemExit(f"`{' '.join(command)}` failed with exit code {result.returncode}")


def check_line(line: str, uv: str, python: str, wheel: Path, version: str) -> float:
    started = time.monotonic()
    venv = ROOT / "build" / "release-check" / line
    shutil.rmtree(venv, ignore_errors=True)
    run([uv, "venv", "--quiet", "--python", python, str(venv)])
    venv_python = str(venv / "bin" / "python")
    lock = ROOT / "requirements" / f"airflow-{line}.txt"
    packages = [str(wheel), *EXAMPLE_DAG_PROVIDERS, *FORM_PROVIDERS.get(line, [])]
    run([uv, "pip", "install", "--quiet", "--python", venv_python, "-c", str(lock), *packages])
    with tempfile.TemporaryDirectory(prefix="cronofy-release-cwd-") as cwd:
        run(
            [
                venv_python,
                str(ROOT / "scripts" / "release_line_check.py"),
                str(ROOT / "example_dags"),
                version,
            ],
            cwd=cwd,
        )
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", required=True, help="the uv executable")
    parser.add_argument("--python", default="python3", help="the interpreter each venv is made from")
    parser.add_argument("lines", nargs="+", help="Airflow lines, e.g. 2.11 3.0 3.1 3.2 3.3")
    args = parser.parse_args()
    wheels = sorted((ROOT / "dist").glob("airflow_provider_cronofy-*-py3-none-any.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel in dist/ (run make dist), found {[w.name for w in wheels]}")
    (wheel,) = wheels
    version = wheel.name.split("-")[1]
    timings = []
    for line in args.lines:
        print(f"== Airflow {line}: a clean venv with {wheel.name}", flush=True)
        timings.append((line, check_line(line, args.uv, args.python, wheel, version)))
    for line, seconds in timings:
        print(f"release check on Airflow {line}: passed in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
