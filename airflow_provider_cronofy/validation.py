"""Checks of what the operators and the hook send, before any request, with a clear message.

Imports no ``requests``: the operators module, which every DAG file imports, uses it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote

from airflow_provider_cronofy.exceptions import CronofyInputError
from airflow_provider_cronofy.wording import plural

PASS_THE_LIST = (
    "Pass the list itself (an XComArg, or a template with render_template_as_native_obj=True on the DAG)."
)


def validate_item(name: str, value: object) -> None:
    """Raise :class:`CronofyInputError` unless ``value`` is a non-blank string without padding
    (a ``CHAR(n)`` column pads) that does not look like a list rendered to text."""
    if not isinstance(value, str):
        raise CronofyInputError(f"{name} must be a string, got {type(value).__name__}: {value!r:.100}.")
    if not value.strip():
        raise CronofyInputError(f"{name} must be a non-blank string, got {value!r}.")
    if value.strip() != value:
        raise CronofyInputError(
            f"{name} {value!r:.100} has leading or trailing white space (a CHAR(n) column pads its "
            f"values): strip it before passing it ({value.strip()!r:.100}), e.g. TRIM() in the query that "
            "reads it. Nothing was sent."
        )
    if (value.startswith("[") and value.endswith("]")) or _is_container_literal(value):
        raise CronofyInputError(
            f"{name} {value!r:.100} looks like a list rendered to a string. {PASS_THE_LIST}"
        )


def refuse_comma_joined(name: str, value: str) -> None:
    """Raise :class:`CronofyInputError` when ``value`` (one id given on its own) holds a comma:
    almost always several ids joined (one that really holds a comma goes in a one-item list)."""
    if "," in value:
        parts = [part.strip() for part in value.split(",")]
        shown = ", ".join(repr(part) for part in parts[:3]) + (", ..." if len(parts) > 3 else "")
        raise CronofyInputError(
            f"{name} {value!r:.100} looks like {len(parts)} ids joined by commas. Pass a list "
            f"instead ([{shown}]); if the comma belongs to the id, pass it as a one-item list "
            f"([{value!r:.100}]): list items are sent exactly as given. Nothing was sent."
        )


def calendar_path_segment(calendar_id: object) -> str:
    """``calendar_id`` percent-encoded as one URL path segment (all but ``-._~`` and
    alphanumerics), so it reaches no other endpoint; a blank, dot-segment or whitespace id is refused."""
    validate_item("calendar_id", calendar_id)
    assert isinstance(calendar_id, str)
    if any(ch.isspace() or not ch.isprintable() for ch in calendar_id):
        raise CronofyInputError(
            f"calendar_id {calendar_id!r} holds whitespace or control characters; Cronofy calendar "
            "ids (cal_...) have none."
        )
    if calendar_id in (".", ".."):
        raise CronofyInputError(
            f"calendar_id {calendar_id!r} is a path dot segment, not a Cronofy calendar id (cal_...)."
        )
    return quote(calendar_id, safe="")


MAX_CONCURRENCY_LIMIT = 100
"""The highest ``max_concurrency`` accepted: more threads than this only add contention."""


def check_max_concurrency(value: object) -> int | None:
    """``value`` if ``None`` or a whole number from 1 to 100, else :class:`CronofyInputError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY_LIMIT:
        raise CronofyInputError(
            f"max_concurrency must be a whole number from 1 to {MAX_CONCURRENCY_LIMIT} (or None for "
            f"the connection's), got {type(value).__name__}: {value!r:.100}."
        )
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool; raise :class:`CronofyInputError` naming it otherwise."""
    if not isinstance(value, bool):
        raise CronofyInputError(f"{name} must be True or False, got {type(value).__name__}: {value!r:.100}.")
    return value


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# A path for CronofyHook.request(): absolute, printable, no scheme or host.
_PATH = re.compile(r"/[\x21-\x7e]*")


def check_method(method: object) -> str:
    """Return ``method`` upper-cased if it is an HTTP method the hook sends; raise otherwise."""
    if isinstance(method, str) and method.strip().upper() in HTTP_METHODS:
        return method.strip().upper()
    raise CronofyInputError(f"method must be one of {', '.join(HTTP_METHODS)}, got {method!r:.100}.")


def check_request_path(path: object) -> None:
    """Raise :class:`CronofyInputError` unless ``path`` is a path from the base URL (``/v1/...``,
    a query allowed; no host, whitespace, fragment or dot segments)."""
    problem = None
    if not isinstance(path, str):
        problem = f"must be a string, got {type(path).__name__}"
    elif not _PATH.fullmatch(path):
        problem = "must start with '/' and hold no spaces or control characters (e.g. '/v1/userinfo')"
    elif "#" in path:
        problem = "must not hold a fragment ('#')"
    elif has_dot_segment(path.split("?")[0]):
        problem = "must not hold '.' or '..' segments"
    if problem:
        raise CronofyInputError(f"path {problem}; got {path!r:.100}.")


def has_dot_segment(path: str) -> bool:
    """Whether ``path`` holds a ``.`` or ``..`` segment, percent-encoded ones (``%2e%2e``) too."""
    return any(unquote(segment) in (".", "..") for segment in path.split("/"))


def check_json_body(body: Any) -> None:
    """Raise :class:`CronofyInputError` unless ``body`` can be sent as JSON (no NaN either)."""
    try:
        json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise CronofyInputError(f"json is not JSON-serialisable: {type(error).__name__}.") from None


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``; raise :class:`CronofyInputError` naming them."""
    if isinstance(value, str) and value in choices:
        return value
    raise CronofyInputError(f"{name} must be one of {', '.join(choices)}, got {value!r:.100}.")


def _is_container_literal(text: str) -> bool:
    if not (text[:1] in "({" and text[-1:] in ")}"):
        return False
    try:
        return isinstance(ast.literal_eval(text), (list, tuple, dict, set))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def normalise_items(name: str, value: object) -> list[str]:
    """``value`` (one string, or a list or tuple of strings) as a list, duplicates once, items as
    given; :class:`CronofyInputError` naming every bad item (padding; one string with a comma)."""
    if isinstance(value, str):
        validate_item(name, value)
        refuse_comma_joined(name, value)
        return [value]
    if isinstance(value, (bytes, bytearray, dict, set, frozenset)) or not isinstance(value, Sequence):
        raise CronofyInputError(
            f"{name} must be a string or a list of strings, got {type(value).__name__}: {value!r:.100}."
        )
    problems: list[str] = []
    for index, item in enumerate(value):
        try:
            validate_item(f"{name}[{index}]", item)
        except CronofyInputError as error:
            problems.append(str(error))
    if problems:
        raise CronofyInputError(
            f"{len(problems)} of the {len(value)} items of {name} are invalid; nothing was sent:\n  "
            + "\n  ".join(shown_problems(problems))
        )
    return list(dict.fromkeys(value))


EventKey = tuple[str, str]
"""One event: ``(calendar_id, event_id)``."""

EVENT_FIELDS = ("calendar_id", "event_id")


def normalise_events(value: object) -> list[EventKey]:
    """Return ``value`` (a list of ``{"calendar_id", "event_id"}`` mappings) as event keys.

    Duplicates (same calendar and event) once, input order kept; other keys of a mapping (a
    warehouse row's ``account``, ``status``) are ignored. Every entry is checked: both ids
    present, non-blank strings, no dot-segment or whitespace calendar id, no commas joining
    several event ids into one. Raises :class:`CronofyInputError` naming each bad entry by its
    position (nothing is sent).
    """
    if isinstance(value, (str, bytes, bytearray, Mapping, set, frozenset)) or not isinstance(value, Sequence):
        # A template rendered to text (no render_template_as_native_obj) arrives as a string.
        hint = f" {PASS_THE_LIST}" if isinstance(value, str) else ""
        raise CronofyInputError(
            'events must be a list of {"calendar_id": ..., "event_id": ...} dicts, got '
            f"{type(value).__name__}: {value!r:.100}.{hint}"
        )
    problems: list[str] = []
    keys: list[EventKey] = []
    for index, entry in enumerate(value):
        problem = _entry_problem(f"events[{index}]", entry)
        if problem:
            problems.append(problem)
        else:
            keys.append((entry["calendar_id"], entry["event_id"]))
    if problems:
        raise CronofyInputError(
            f"{len(problems)} of the {plural(len(value), 'entry', 'entries')} of events are invalid; "
            "nothing was sent:\n  " + "\n  ".join(shown_problems(problems))
        )
    return list(dict.fromkeys(keys))


def _entry_problem(where: str, entry: object) -> str | None:
    if not isinstance(entry, Mapping):
        return (
            f'{where} must be a dict {{"calendar_id": ..., "event_id": ...}}, got '
            f"{type(entry).__name__}: {entry!r:.100}."
        )
    missing = [name for name in EVENT_FIELDS if name not in entry]
    if missing:
        return (
            f"{where} has no {' and no '.join(missing)} (its keys: {', '.join(map(str, entry)) or 'none'})."
        )
    found = []
    try:
        calendar_path_segment(entry["calendar_id"])
    except CronofyInputError as error:
        found.append(str(error))
    event_id = entry["event_id"]
    try:
        validate_item("event_id", event_id)
    except CronofyInputError as error:
        found.append(str(error))
    else:
        try:
            refuse_comma_joined("event_id", event_id)
        except CronofyInputError:
            found.append(
                f"event_id {event_id!r:.100} looks like several ids joined by commas: give each "
                "event an entry of its own. (An event id that really holds a comma can be sent with "
                "calendar_id + event_id=[...] instead.)"
            )
    return f"{where}: " + " ".join(found) if found else None


PROBLEMS_SHOWN = 10
"""An input error names this many bad items or entries, then says how many more there are."""


def shown_problems(problems: list[str]) -> list[str]:
    """The first :data:`PROBLEMS_SHOWN` of ``problems``, then ``... and N more.``"""
    more = len(problems) - PROBLEMS_SHOWN
    return problems[:PROBLEMS_SHOWN] + ([f"... and {more} more."] if more > 0 else [])
