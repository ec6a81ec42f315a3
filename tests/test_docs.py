"""The docs' code comes from files a test runs, and every include still finds its region.

* every ``literalinclude`` of ``docs/`` names a file under ``example_dags/`` or ``docs/samples/``
  (both run by tests: ``tests/test_example_dags.py``, ``tests/test_docs_samples.py``), and its
  ``start-after`` / ``end-before`` markers exist there, once each, in that order, around code;
* no page of ``docs/`` holds a Python block written by hand;
* every ``[START howto_...]`` marker of those files has its ``[END ...]``;
* every ``literalinclude`` is followed by a link to its file, so a page read on GitHub (which
  shows the directive, not the code) still leads to the code;
* every ``airflow pools set`` the docs, README, examples and demo give is the one command;
* the README's DAG is the marked region of the example DAG it names, character for character
  (GitHub cannot include files, so the README holds a copy, and this test keeps it one).

``make docs`` (Sphinx with ``-W``) fails on the rest: a broken link, a missing page.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUN_BY_TESTS = (ROOT / "example_dags", DOCS / "samples")

# A MyST directive: ```{literalinclude} path, then ":option: value" lines, then ```.
INCLUDE = re.compile(r"^```\{literalinclude\}\s+(?P<path>\S+)\n(?P<options>(?::[\w-]+:.*\n)*)```", re.M)
OPTION = re.compile(r"^:(?P<name>[\w-]+):\s*(?P<value>.*)$", re.M)
MARKER = re.compile(r"# \[(?P<kind>START|END) (?P<name>howto_\w+)\]")
README_SNIPPET = re.compile(
    r"<!-- literalinclude (?P<path>\S+) (?P<name>howto_\w+) -->\n```python\n(?P<code>.*?)```", re.S
)


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


def includes() -> list[tuple[Path, Path, dict[str, str]]]:
    found = []
    for page in pages():
        for match in INCLUDE.finditer(page.read_text()):
            options = {m["name"]: m["value"].strip().strip('"') for m in OPTION.finditer(match["options"])}
            found.append((page, (page.parent / match["path"]).resolve(), options))
    return found


def region(path: Path, name: str) -> str:
    """The text between ``# [START name]`` and ``# [END name]`` of ``path``, dedented."""
    text = path.read_text()
    start, end = f"[START {name}]", f"[END {name}]"
    assert text.count(start) == 1 and text.count(end) == 1, f"{path}: {name} markers missing or repeated"
    body = text.split(start, 1)[1].split("\n", 1)[1]
    body = body.split(end, 1)[0].rsplit("\n", 1)[0] + "\n"
    return textwrap.dedent(body)


def test_the_docs_include_code():
    # The parser of this test must see the includes, or the checks below would pass on nothing.
    assert len(includes()) >= 10


@pytest.mark.parametrize(
    ("page", "path", "options"),
    includes(),
    ids=lambda value: value.name if isinstance(value, Path) else None,
)
def test_literalinclude_markers_exist(page, path, options):
    where = f"{page.relative_to(ROOT)} includes {path}"
    assert path.is_file(), f"{where}: no such file"
    assert any(folder in path.parents for folder in RUN_BY_TESTS), f"{where}: not a file a test runs"
    assert "start-after" in options and "end-before" in options, f"{where}: include a marked region"
    text = path.read_text()
    start, end = options["start-after"], options["end-before"]
    assert text.count(start) == 1, f"{where}: {start!r} found {text.count(start)} times"
    assert text.count(end) == 1, f"{where}: {end!r} found {text.count(end)} times"
    between = text.split(start, 1)[1].split(end, 1)[0]
    assert between.strip(" #\n"), f"{where}: nothing between {start!r} and {end!r}"


def test_no_python_written_by_hand_in_the_docs():
    for page in pages():
        assert "```python" not in page.read_text(), f"{page}: include the code from a file a test runs"


@pytest.mark.parametrize("folder", RUN_BY_TESTS, ids=lambda p: p.name)
def test_every_start_marker_has_its_end(folder):
    for path in sorted(folder.rglob("*.py")):
        starts, ends = [], []
        for match in MARKER.finditer(path.read_text()):
            (starts if match["kind"] == "START" else ends).append(match["name"])
        assert sorted(starts) == sorted(ends), path
        assert len(set(starts)) == len(starts), f"{path}: a region name is used twice"


def test_readme_dag_is_the_example_dags_marked_region():
    snippets = list(README_SNIPPET.finditer((ROOT / "README.md").read_text()))
    assert snippets, "the README's DAG must be marked: <!-- literalinclude PATH howto_NAME -->"
    for snippet in snippets:
        path = ROOT / snippet["path"]
        assert any(folder in path.parents for folder in RUN_BY_TESTS), snippet["path"]
        assert snippet["code"] == region(path, snippet["name"]), (
            f"README.md's copy of {snippet['path']} [{snippet['name']}] differs from the file: "
            "copy the region again"
        )


def test_readme_links_to_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    top_level = sorted(p.relative_to(ROOT).as_posix() for p in DOCS.glob("*.md") if p.name != "index.md")
    missing = [page for page in top_level if f"]({page}" not in readme]
    assert missing == [], f"README.md links to no {missing}"


def test_readme_links_lead_to_files():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((?!https?://)([^)#]+)(?:#[^)]*)?\)", readme)
    assert len(targets) > 10
    missing = sorted({target for target in targets if not (ROOT / target).exists()})
    assert missing == [], f"README.md links to missing files: {missing}"


@pytest.mark.parametrize(
    ("page", "path", "options"), includes(), ids=lambda value: getattr(value, "name", "")
)
def test_every_include_is_followed_by_a_link_to_its_file(page, path, options):
    text = page.read_text()
    for match in INCLUDE.finditer(text):
        if (page.parent / match["path"]).resolve() != path:
            continue
        after = text[match.end() :].lstrip("\n").split("\n", 1)[0]
        assert f"]({match['path']})" in after, f"{page.name}: no link to {match['path']} after its include"
        assert path.is_file()


POOL_COMMAND = (
    'airflow pools set cronofy_api 1 "Cronofy API (rate limited per application)" --include-deferred'
)


def test_one_pool_command_everywhere():
    places = [
        ROOT / "README.md",
        *pages(),
        *(ROOT / "example_dags").rglob("*.py"),
        *(DOCS / "samples").glob("*.py"),
    ]
    commands = [
        line.strip(" `.")
        for place in places
        for line in re.findall(r"airflow pools set[^`\n]*", place.read_text())
    ]
    assert len(commands) >= 4  # README, quickstart, rate limits, the example DAG at least
    assert set(commands) == {POOL_COMMAND}
    # The demo creates the pool with the same arguments.
    demo = (ROOT / "scripts" / "demo.py").read_text()
    assert (
        '"pools", "set", "cronofy_api", "1", "Cronofy API (rate limited per application)", "--include-deferred"'
        in demo
    )
