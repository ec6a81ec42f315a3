"""Sphinx configuration of the airflow-provider-cronofy manual (`make docs`).

Built with warnings as errors (``-W``) and nitpicky references (``-n``): a broken internal link,
a missing ``literalinclude`` marker or an unresolvable name in our own docstrings fails the build.
Names of other projects (Airflow, requests, the standard library) are not cross-referenced (the
build needs no network, so no intersphinx); ``nitpick_ignore_regex`` lists them.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_cronofy import __version__  # noqa: E402

project = "airflow-provider-cronofy"
author = "airflow-provider-cronofy developers"
copyright = "airflow-provider-cronofy developers, Apache-2.0"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "samples", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# MyST: `[text](page.md#a-heading)` resolves (and warns when the heading does not exist).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

nitpicky = True
nitpick_ignore_regex = [
    # The engine's internal modules and classes (settings, transport, pacing, concurrency, events,
    # deferral, the emulator's parts) are not public API: docstrings name them, the reference
    # does not document them.
    (r"py:mod", r"\.?[a-z_]+(\.[a-z_]+)?"),
    (r"py:mod", r"airflow_provider_cronofy\.(hooks|operators)\.(?!cronofy$|meeting_agents$)[a-z_]+"),
    (
        r"py:class",
        r"airflow_provider_cronofy\.(hooks|operators|testing\.emulator)\.(?!cronofy\.CronofyHook$|meeting_agents\.Cancel)[a-z_]+\.[A-Za-z_]+",
    ),
    (
        r"py:class",
        r"(transport|events|call|engine|tokens|concurrency|pacing|settings|bulk|deferral)\.[A-Za-z_]+",
    ),
    (
        r"py:class",
        r"(Call|Job|Request|Reply|RetryLater|Stopped|Where|Credentials|CronofySettings|RequestPacer|Transport)",
    ),
    # The event jobs move between hooks/ modules (cronofy, events): any job class.
    (r"py:class", r"([a-z_.]+\.)?[A-Za-z]*Job"),
    # Other projects' names, shown as written but not linked (no intersphinx: no network).
    (
        r"py:.*",
        r"(airflow|requests|urllib3|pytest|ssl|socket|datetime|collections|typing|types|json|logging|threading)(\..*)?",
    ),
    (r"py:.*", r"(Any|Callable|Iterator|Mapping|Sequence|NamedTuple|Protocol|Self|TypeVar)"),
    (
        r"py:class",
        r"(AirflowException|AirflowFailException|BaseHook|BaseOperator|DateTimeTrigger|ValueError|Exception|object)",
    ),
    (r"py:class", r"(Context|TaskInstance|XComArg|DAG|pathlib\.Path|Path)"),
    # Inherited from the operators' shared base, which the reference does not document.
    (r"py:meth", r"execute_complete"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
# No "members" default: Sphinx lets a default of True override a directive's own list
# (``:members: request, close``), which would document every internal method of the hook. Each
# directive of docs/api/ says which members it shows.
autodoc_default_options = {"show-inheritance": True}
autodoc_inherit_docstrings = False


def resolve_short_names(app, env, node, contnode):  # type: ignore[no-untyped-def]
    """Resolve ``:class:`CronofyConfigError``` written in another module's docstring: a bare name
    that is exactly one documented object of this package (what Sphinx does for ``.name``)."""
    from sphinx.util.nodes import make_refnode

    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    domain = env.get_domain("py")
    matches = [
        (name, obj)
        for name, obj in domain.objects.items()
        if name.startswith("airflow_provider_cronofy.") and name.endswith("." + target)
    ]
    if len({obj.docname + obj.node_id for _, obj in matches}) != 1:
        return None
    name, obj = matches[0]
    return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode, name)


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("missing-reference", resolve_short_names)


html_theme = "furo"
html_title = f"airflow-provider-cronofy {release}"
html_static_path = ["_static"]
