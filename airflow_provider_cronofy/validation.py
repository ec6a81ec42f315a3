"""Checks of the items the operators and the hook send: before any request, with a clear message.

Kept apart from the hook so that the operators module, which every DAG file imports, does not
pull in ``requests`` at DAG-parse time.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from airflow_provider_cronofy.exceptions import CronofyInputError
from airflow_provider_cronofy.wording import plural


def validate_item(name: str, value: object) -> None:
    """Raise :class:`CronofyInputError` unless ``value`` is a non-blank string without padding.

    Leading or trailing white space is refused: a warehouse ``CHAR(n)`` column pads its values,
    and Cronofy would take ``"deal-1   "`` for another id than ``"deal-1"`` and cancel nothing.
    White space inside an id is sent as given (an id of the caller's own may hold a space).
    A string that looks like a rendered Python or JSON list, tuple or dict (``"['a', 'b']"``,
    ``"('a', 'b')"``) is refused too: it is almost always a templated value rendered to text.
    """
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
            f"{name} {value!r:.100} looks like a list rendered to a string. Pass the list itself "
            "(an XComArg, or a template with render_template_as_native_obj=True on the DAG)."
        )


def refuse_comma_joined(name: str, value: str) -> None:
    """Raise :class:`CronofyInputError` when ``value`` (one id given on its own) holds a comma.

    ``"deal-1,deal-2"`` passed where one id is expected is almost always several ids joined into
    one string; Cronofy would treat it as one id and cancel nothing. An id that really holds a
    comma goes in a one-item list, whose items are sent exactly as given.
    """
    if "," in value:
        parts = [part.strip() for part in value.split(",")]
        shown = ", ".join(repr(part) for part in parts[:3]) + (", ..." if len(parts) > 3 else "")
        raise CronofyInputError(
            f"{name} {value!r:.100} looks like {len(parts)} ids joined by commas. Pass a list "
            f"instead ([{shown}]); if the comma belongs to the id, pass it as a one-item list "
            f"([{value!r:.100}]): list items are sent exactly as given. Nothing was sent."
        )


def calendar_path_segment(calendar_id: object) -> str:
    """Return ``calendar_id`` percent-encoded as one URL path segment.

    Every character but letters, digits and ``-._~`` is encoded (``/``, ``?`` and ``#``
    included), so no calendar id can reach another endpoint. Ids that are blank, are ``.`` or
    ``..`` (dot segments that a URL resolver would climb out of) or hold whitespace or control
    characters are refused: no Cronofy calendar id looks like that.
    """
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
    """Return ``value`` unless it is neither ``None`` nor a whole number from 1 to 100.

    :raises CronofyInputError: naming the value and the allowed range.
    """
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
    """Raise :class:`CronofyInputError` unless ``path`` is a path from the base URL (``/v1/...``).

    A query is allowed; a host, whitespace, control characters, a fragment and ``.``/``..``
    segments (encoded ones too) are not.
    """
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
    """Whether ``path`` holds a ``.`` or ``..`` segment, percent-encoded ones (``%2e%2e``) too.

    HTTP clients and servers decode ``%2e%2e`` to ``..`` and climb out of the path it sits in.
    """
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
    """Return ``value`` (one string, or a list or tuple of strings) as a list without duplicates.

    Items are kept exactly as given (no stripping, commas and inner spaces included) and in input
    order; the first of duplicates stays. An item with leading or trailing white space is refused,
    and so is one string holding a comma (it is almost always several ids joined into one).
    Raises :class:`CronofyInputError` naming every bad item.
    """
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
        shown = problems[:10] + ([f"... and {len(problems) - 10} more."] if len(problems) > 10 else [])
        raise CronofyInputError(
            f"{len(problems)} of the {len(value)} items of {name} are invalid; nothing was sent:\n  "
            + "\n  ".join(shown)
        )
    return list(dict.fromkeys(value))


EventKey = tuple[str, str]
"""One event: ``(calendar_id, event_id)``."""

EVENT_FIELDS = ("calendar_id", "event_id")
PROBLEMS_SHOWN = 10


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
        hint = (
            " Pass the list itself (an XComArg, or a template with render_template_as_native_obj=True "
            "on the DAG)."
            if isinstance(value, str)
            else ""
        )
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
        shown = problems[:PROBLEMS_SHOWN]
        if len(problems) > PROBLEMS_SHOWN:
            shown.append(f"... and {len(problems) - PROBLEMS_SHOWN} more.")
        raise CronofyInputError(
            f"{len(problems)} of the {plural(len(value), 'entry', 'entries')} of events are invalid; "
            "nothing was sent:\n  " + "\n  ".join(shown)
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


AGENT_FIELDS = ("scheduling_key", "join_url", "join_time")
"""The fields every entry of ``agents`` must have."""
AGENT_OPTIONAL_FIELDS = ("on_behalf_of_attendee", "subscriptions")
"""The fields an entry of ``agents`` may have; sent as given when present (and not ``None``)."""
AGENT_PROBLEMS_SHOWN = 10
"""How many problems an ``agents`` error lists before "... and N more"."""

# ISO 8601 extended format, date and time, with a zone: the forms Python 3.10's fromisoformat
# and 3.11's parse alike are not the same set, so the form is checked here, not by the parser.
_ISO_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
    r"(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)"
)


def normalise_agents(value: object, *, now: datetime) -> list[dict[str, Any]]:
    """Return the Meeting Agents to schedule, checked, as the bodies Cronofy receives.

    ``value`` is a list of dicts (an upstream task's XCom of warehouse rows is the everyday case),
    each with:

    * ``scheduling_key``: a non-blank string without leading or trailing white space (the rule
      of ``validate_item``; white space inside is kept);
    * ``join_url``: an ``https://`` URL with a host, sent as given;
    * ``join_time``: an ISO 8601 date and time with a zone offset or ``Z``
      (``"2030-01-01T10:00:00+01:00"``), or an aware :class:`~datetime.datetime`, later than
      ``now``. It is sent in UTC as ``YYYY-MM-DDTHH:MM:SSZ``: fractions of a second are dropped
      (truncated), and a time that is ``now`` or earlier once truncated is refused;
    * optionally ``on_behalf_of_attendee``: a dict with a string ``"email"`` holding an ``@``;
    * optionally ``subscriptions``: a list of dicts, each with a string ``"type"`` and ``"uri"``.

    The two optional fields are sent as given; ``None`` (a NULL column) counts as absent.
    **Every other key of an entry is ignored and never sent**: a warehouse row's ``meeting_id``,
    ``status`` or ``attendees`` columns stay out of the request.

    One dict per distinct ``scheduling_key`` comes back, in input order, with only the fields
    above. A key given twice with the same normalised fields is sent once; a key given twice
    for different meetings (any field differs) is refused, naming both positions.

    :param now: the current time (aware); ``join_time`` must be later.
    :raises CronofyInputError: ``value`` is not a list, or naming every bad entry by position and
        field (``agents[3].join_time: ...``, at most 10 shown). Nothing is sent.
    """
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise CronofyInputError(f"now must be an aware datetime, got {now!r:.100}.")
    if isinstance(value, (str, bytes, bytearray, Mapping, set, frozenset)) or not isinstance(value, Sequence):
        if isinstance(value, str):
            # A template rendered to text (no render_template_as_native_obj) arrives as a string.
            hint = (
                " Pass the list itself (an XComArg, or a template with "
                "render_template_as_native_obj=True on the DAG)."
            )
        elif isinstance(value, Mapping):
            hint = " One agent goes in a one-item list: [{...}]."
        else:
            hint = ""
        raise CronofyInputError(
            'agents must be a list of {"scheduling_key": ..., "join_url": ..., "join_time": ...} '
            f"dicts, got {type(value).__name__}: {value!r:.100}.{hint} Nothing was sent."
        )
    problems: list[str] = []
    bad_entries: set[int] = set()
    agents: dict[str, dict[str, Any]] = {}
    first_at: dict[str, int] = {}
    for index, entry in enumerate(value):
        where = f"agents[{index}]"
        agent, found = _agent_of(where, entry, now)
        if found:
            problems.extend(found)
            bad_entries.add(index)
            continue
        assert agent is not None
        key = agent["scheduling_key"]
        if key not in agents:
            agents[key] = agent
            first_at[key] = index
        elif agents[key] != agent:
            differ = [
                name
                for name in (*AGENT_FIELDS, *AGENT_OPTIONAL_FIELDS)
                if agents[key].get(name) != agent.get(name)
            ]
            problems.append(
                f"{where}.scheduling_key: {key!r:.100} is also the key of agents[{first_at[key]}], "
                f"for another meeting ({' and '.join(differ)} {'differs' if len(differ) == 1 else 'differ'}): one key schedules one agent. "
                "Give each meeting a key of its own, or drop one of the two."
            )
            bad_entries.add(index)
    if problems:
        shown = problems[:AGENT_PROBLEMS_SHOWN]
        if len(problems) > AGENT_PROBLEMS_SHOWN:
            shown.append(f"... and {len(problems) - AGENT_PROBLEMS_SHOWN} more.")
        raise CronofyInputError(
            f"{len(bad_entries)} of the {len(value)} {'entry' if len(value) == 1 else 'entries'} of "
            "agents are invalid:\n  " + "\n  ".join(shown) + "\nNothing was sent."
        )
    return list(agents.values())


def _agent_of(where: str, entry: object, now: datetime) -> tuple[dict[str, Any] | None, list[str]]:
    """The body of one entry of ``agents``, or ``None`` and its problems (one per field)."""
    if not isinstance(entry, Mapping):
        return None, [
            f"{where}: must be a dict with scheduling_key, join_url and join_time, got "
            f"{type(entry).__name__}: {entry!r:.100}."
        ]
    keys = ", ".join(map(str, entry)) or "none"
    found = [
        f"{where}.{name}: missing (the entry's keys: {keys:.200})."
        for name in AGENT_FIELDS
        if name not in entry
    ]
    agent: dict[str, Any] = {}
    checks: dict[str, Callable[[object], Any]] = {
        "scheduling_key": _agent_key,
        "join_url": _join_url,
        "join_time": lambda raw: _join_time(raw, now),
        "on_behalf_of_attendee": _attendee,
        "subscriptions": _subscriptions,
    }
    for name, check in checks.items():
        if name not in entry or (name in AGENT_OPTIONAL_FIELDS and entry[name] is None):
            continue
        try:
            agent[name] = check(entry[name])
        except CronofyInputError as error:
            found.append(f"{where}.{name}: {error}")
    return (None, found) if found else (agent, [])


def _agent_key(value: object) -> str:
    try:
        validate_item("scheduling_key", value)
    except CronofyInputError as error:
        raise CronofyInputError(str(error).removesuffix(" Nothing was sent.")) from None
    assert isinstance(value, str)
    return value


def _join_url(value: object) -> str:
    if not isinstance(value, str):
        raise CronofyInputError(
            f"must be an https:// URL (a string), got {type(value).__name__}: {value!r:.100}."
        )
    if value.strip() != value:
        raise CronofyInputError(
            f"{value!r:.100} has leading or trailing white space: strip it ({value.strip()!r:.100})."
        )
    problem = None
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        problem = "holds white space or control characters"
    else:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  # raises ValueError for a port that is not a number
        except ValueError:
            problem = "is not a URL"
        else:
            if parts.scheme.lower() != "https":
                problem = (
                    f"is not an https:// URL (scheme {parts.scheme!r})"
                    if parts.scheme
                    else "is not an https:// URL"
                )
            elif not parts.hostname:
                problem = "has no host"
    if problem:
        raise CronofyInputError(
            f"{value!r:.100} {problem}; join_url must be the meeting's https:// URL, e.g. "
            "'https://meet.example.com/abc-defg-hij'."
        )
    return value


def _join_time(value: object, now: datetime) -> str:
    example = "e.g. '2030-01-01T10:00:00Z' or '2030-01-01T11:00:00+01:00'"
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise CronofyInputError(
                f"{value!r:.100} is a naive datetime (no zone): give it a tzinfo, e.g. "
                "datetime(..., tzinfo=timezone.utc), so the time is not guessed."
            )
        moment = value
    elif isinstance(value, str):
        match = _ISO_TIME.fullmatch(value)
        if match is None:
            naive = re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?", value)
            why = "has no zone offset (it would be guessed)" if naive else "is not an ISO 8601 date and time"
            raise CronofyInputError(
                f"{value!r:.100} {why}; join_time must be an ISO 8601 time with a zone, {example}."
            )
        zone = match["zone"].upper()
        offset = "+00:00" if zone == "Z" else (zone if len(zone) != 5 else f"{zone[:3]}:{zone[3:]}")
        if len(offset) == 3:
            offset += ":00"
        text = f"{match['date']}T{match['hour']}:{match['minute']}:{match['second'] or '00'}{offset}"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise CronofyInputError(
                f"{value!r:.100} is not a valid time (a field out of range); join_time must be an "
                f"ISO 8601 time with a zone, {example}."
            ) from None
    else:
        raise CronofyInputError(
            f"must be an ISO 8601 string with a zone or an aware datetime, got "
            f"{type(value).__name__}: {value!r:.100}."
        )
    utc = moment.astimezone(timezone.utc).replace(microsecond=0)
    if utc <= now:
        raise CronofyInputError(
            f"{value!r:.100} is not in the future ({utc:%Y-%m-%dT%H:%M:%SZ}; now is "
            f"{now.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}): an agent cannot join a meeting that has begun."
        )
    return f"{utc:%Y-%m-%dT%H:%M:%SZ}"


def _attendee(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise CronofyInputError(
            f'must be a dict {{"email": ...}}, got {type(value).__name__}: {value!r:.100}.'
        )
    email = value.get("email")
    if not isinstance(email, str) or email.strip() != email or "@" not in email.strip("@"):
        raise CronofyInputError(
            f'must hold an "email" address (a string with an @, no padding), got {email!r:.100}.'
        )
    _check_json("on_behalf_of_attendee", value)
    return dict(value)


def _subscriptions(value: object) -> list[dict[str, Any]]:
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Sequence):
        raise CronofyInputError(
            'must be a list of {"type": ..., "uri": ...} dicts, got '
            f"{type(value).__name__}: {value!r:.100}."
        )
    for index, subscription in enumerate(value):
        if not isinstance(subscription, Mapping):
            raise CronofyInputError(
                f"[{index}] must be a dict with type and uri, got {type(subscription).__name__}: "
                f"{subscription!r:.100}."
            )
        for name in ("type", "uri"):
            field_value = subscription.get(name)
            if not isinstance(field_value, str) or not field_value.strip():
                raise CronofyInputError(
                    f"[{index}].{name} must be a non-blank string, got {field_value!r:.100}."
                )
    _check_json("subscriptions", value)
    return [dict(subscription) for subscription in value]


def _check_json(name: str, value: object) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise CronofyInputError(
            f"is not JSON-serialisable ({type(error).__name__}): {name} is sent as JSON."
        ) from None
