"""Checking the ``agents=`` rows of :class:`~airflow_provider_cronofy.operators.meeting_agents.ScheduleMeetingAgentOperator`
before anything is sent, and turning them into the bodies Cronofy receives.

Pure functions: no ``requests`` (DAG files import the operators, which import this).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_cronofy.exceptions import CronofyInputError
from airflow_provider_cronofy.validation import shown_problems, validate_item

AGENT_FIELDS = ("scheduling_key", "join_url", "join_time")
"""The fields every entry of ``agents`` must have."""
AGENT_OPTIONAL_FIELDS = ("on_behalf_of_attendee", "subscriptions")
"""The fields an entry of ``agents`` may have; sent as given when present (and not ``None``)."""
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
        shown = shown_problems(problems)
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
