"""Run many snippets, each in an interpreter of its own, for the price of one Airflow import.

A test that must see what a *fresh* interpreter does (an import that raises or warns, what an
import pulls into ``sys.modules``, what an Airflow command prints) used to start
``python -c snippet`` once per fact, and each start paid ~1.3 s to import Airflow. Here one child
interpreter imports what every snippet would import first anyway (``preload``, e.g. ``import
airflow``), forgets every module of this provider it pulled in (Airflow's provider discovery
imports ``get_provider_info``), then forks once per snippet (one per CPU at a time): each fork runs its snippet as
``__main__`` on a copy of that interpreter, with its own environment variables, ``sys.argv``,
stdout and stderr, and exits with the snippet's exit code. Nothing a snippet imports or changes is
seen by the next one, and none of this provider's modules is imported before a snippet imports
it. POSIX only (``os.fork``), like Airflow itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "airflow_provider_cronofy"

# The child interpreter's program: read the spec, preload, then fork a process per snippet.
_SERVER = r"""
import json, os, signal, sys, tempfile, traceback

with open(sys.argv[1], encoding="utf-8") as spec_file:
    spec = json.load(spec_file)
exec(compile(spec["preload"], "<preload>", "exec"), {"__name__": "__preload__"})
for name in [n for n in sys.modules if n == spec["package"] or n.startswith(spec["package"] + ".")]:
    del sys.modules[name]
results = {}
running = {}  # pid -> (name, stdout file, stderr file)


def collect(pid, status):
    name, out, err = running.pop(pid)
    out.seek(0)
    err.seek(0)
    results[name] = {
        "returncode": os.waitstatus_to_exitcode(status),
        "stdout": out.read().decode("utf-8", "replace"),
        "stderr": err.read().decode("utf-8", "replace"),
    }
    out.close()
    err.close()


for probe in spec["probes"]:
    while len(running) >= spec["parallel"]:
        collect(*os.wait())
    sys.stdout.flush()
    sys.stderr.flush()
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(spec["timeout"])  # a hung snippet dies (SIGALRM) instead of hanging the run
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            os.environ.update(probe["env"])
            sys.argv = probe["argv"]
            exec(compile(probe["code"], "<string>", "exec"), {"__name__": "__main__"})
            code = 0
        except SystemExit as exit_:
            if exit_.code is None or isinstance(exit_.code, int):
                code = exit_.code or 0
            else:
                print(exit_.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    running[pid] = (probe["name"], out, err)
while running:
    collect(*os.wait())
with open(sys.argv[2], "w", encoding="utf-8") as result_file:
    json.dump(results, result_file)
"""


@dataclass(frozen=True)
class Snippet:
    """Python code to run as ``__main__`` in a fresh interpreter (``python -c code``).

    :param code: the program.
    :param env: environment variables set (on top of the test session's) before it runs.
    :param argv: its ``sys.argv`` (``["-c"]``, as ``python -c`` gives, unless set).
    """

    code: str
    env: Mapping[str, str] = field(default_factory=dict)
    argv: Sequence[str] = ("-c",)


@dataclass(frozen=True)
class Finished:
    """How a snippet ended: its exit code and everything it wrote."""

    returncode: int
    stdout: str
    stderr: str


def run_fresh(
    snippets: Mapping[str, Snippet],
    *,
    preload: str = "import airflow",
    timeout: int = 120,
    parallel: int | None = None,
) -> dict[str, Finished]:
    """Run each of ``snippets`` (by name) in a fresh interpreter that ran ``preload`` only.

    ``preload`` must be what each snippet would import first anyway; this provider's modules are
    dropped after it, so a snippet imports every one of them afresh. A snippet running longer
    than ``timeout`` seconds is killed (its return code is then ``-14``). Up to ``parallel``
    snippets run at once (default: one per CPU); each runs alone in its own process whatever
    runs beside it.
    """
    spec = {
        "package": PACKAGE,
        "preload": preload,
        "timeout": timeout,
        "parallel": parallel or os.cpu_count() or 1,
        "probes": [
            {"name": name, "code": s.code, "env": dict(s.env), "argv": list(s.argv)}
            for name, s in snippets.items()
        ],
    }
    with tempfile.TemporaryDirectory(prefix="fresh-interpreter-") as folder:
        spec_path, result_path = Path(folder, "spec.json"), Path(folder, "results.json")
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        server = subprocess.run(
            [sys.executable, "-c", _SERVER, str(spec_path), str(result_path)],
            capture_output=True,
            text=True,
            timeout=60 + timeout * max(1, len(snippets)),
            env=os.environ.copy(),
        )
        assert server.returncode == 0 and result_path.exists(), server.stderr[-3000:]
        results = json.loads(result_path.read_text(encoding="utf-8"))
    return {name: Finished(**results[name]) for name in snippets}
