"""Run the Cronofy emulator from the shell: ``python -m airflow_provider_cronofy.testing``.

Prints the URL and an ``AIRFLOW_CONN_CRONOFY_DEFAULT=...`` line to export, then serves until
Ctrl-C or SIGTERM. With ``--certfile`` (and ``--keyfile``) it serves HTTPS.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import shlex
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from airflow_provider_cronofy.testing.emulator import CronofyEmulator, Latency
from airflow_provider_cronofy.testing.emulator.settings import REPEATED_SCHEDULING_KEY_MODES

DEMO_ACCESS_TOKEN = "emulator-access-token"
DEMO_REFRESH_TOKEN = "emulator-refresh-token"
DEMO_CALENDAR_ID = "cal_demo"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def parse_latency(text: str) -> Latency:
    """``"0.15"`` (fixed seconds) or ``"0.1:0.2"`` (drawn uniformly between the two, per request)."""
    low_text, colon, high_text = text.partition(":")
    try:
        low = float(low_text)
        high = float(high_text) if colon else low
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not seconds (e.g. 0.15) or a range MIN:MAX (e.g. 0.1:0.2)"
        ) from None
    if not (0 <= low <= high < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be finite, >= 0, and MIN <= MAX")
    if low == high:
        return low
    return lambda: random.uniform(low, high)


def _non_blank(option: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{option} needs a non-blank value")
        return text

    return check


def _count(values: Sequence[object], noun: str) -> str:
    return f"{len(values)} {noun}{'' if len(values) == 1 else 's'}"


def parse_event(text: str) -> tuple[str, str]:
    """``"cal_1:evt_1"`` as ``("cal_1", "evt_1")``: split at the first colon (event ids may hold more)."""
    calendar_id, colon, event_id = text.partition(":")
    if not colon or not calendar_id.strip() or not event_id.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not CALENDAR_ID:EVENT_ID (e.g. cal_demo:evt_1)")
    return calendar_id, event_id


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_cronofy.testing",
        description="Serve a local Cronofy API emulator for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_non_negative, default=8765, help="port; 0 picks a free one (default 8765)"
    )
    parser.add_argument("--api-key", default="emulator-api-key", help="API key (client secret) to accept")
    parser.add_argument("--client-id", default="emulator-client-id", help="OAuth client id to accept")
    parser.add_argument(
        "--unknown-key-status",
        type=int,
        choices=(202, 404),
        default=202,
        help="answer to cancelling an unknown or already-cancelled scheduling key (default 202). "
        "Use 404 to make typos visible: a key nobody scheduled then comes back in the operator's "
        "not_found instead of cancelled",
    )
    parser.add_argument(
        "--rate-limit-per-second", type=_non_negative, default=50, help="0 = off (default 50)"
    )
    parser.add_argument(
        "--rate-limit-per-minute", type=_non_negative, default=500, help="0 = off (default 500)"
    )
    parser.add_argument(
        "--latency",
        type=parse_latency,
        default=0.0,
        metavar="SECONDS|MIN:MAX",
        help="seconds added to every answer, fixed or drawn uniformly from MIN:MAX (default 0)",
    )
    parser.add_argument(
        "--batch-rate-cost",
        choices=("request", "entries"),
        default="request",
        help="a POST /v1/batch counts as one request against the rate limits, or one per entry "
        "(default request)",
    )
    parser.add_argument(
        "--repeated-scheduling-key",
        choices=REPEATED_SCHEDULING_KEY_MODES,
        default="replace",
        help="what scheduling a key that has a live Meeting Agent already does: replace its "
        "join_url/join_time (default), add a second live agent (duplicate), or answer 422 "
        "(refuse). Cronofy's real behaviour is unconfirmed",
    )
    parser.add_argument(
        "--rotate-refresh-tokens", action="store_true", help="issue a new refresh token on every refresh"
    )
    parser.add_argument(
        "--seed-demo",
        action="store_true",
        help=f"pre-load agents demo-key-1..3 and events evt_demo_1..2 (with agents) in {DEMO_CALENDAR_ID}",
    )
    parser.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="KEY",
        type=_non_blank("--agent"),
        help="schedule a Meeting Agent with this scheduling key (repeatable; a key given twice "
        "follows --repeated-scheduling-key)",
    )
    parser.add_argument(
        "--event",
        action="append",
        default=[],
        metavar="CALENDAR_ID:EVENT_ID",
        type=parse_event,
        help="create an event with a Meeting Agent (repeatable); the calendar is created if new, "
        "owned by the account of the access token the printed connection carries",
    )
    parser.add_argument(
        "--certfile",
        help="PEM certificate (chain) to serve HTTPS with; clients must trust it, e.g. through "
        "REQUESTS_CA_BUNDLE (default: plain HTTP)",
    )
    parser.add_argument("--keyfile", help="PEM private key of --certfile, if not in that file")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="log every request to stderr, with the scheduling key or event ids it carried (a batch's "
        "as calendar_id:event_id; never a credential)",
    )
    return parser


def server_tls_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """A server-side TLS context serving ``certfile`` (with ``keyfile``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


def seed_demo(emulator: CronofyEmulator) -> None:
    """Pre-load the demo agents and events (the calendar must already exist)."""
    for number in (1, 2, 3):
        emulator.schedule_agent(
            f"demo-key-{number}",
            join_url=f"https://meet.example.com/demo-{number}",
            join_time=f"2030-01-0{number}T10:00:00Z",
        )
    for number in (1, 2):
        emulator.add_event(DEMO_CALENDAR_ID, f"evt_demo_{number}", summary=f"Demo meeting {number}")


def seed_given(emulator: CronofyEmulator, keys: Sequence[str], events: Sequence[tuple[str, str]]) -> None:
    """Schedule an agent per key; create each event (with an agent) in its calendar, which is
    created, owned by the demo access token's account, if the emulator does not know it."""
    for key in keys:
        emulator.schedule_agent(key)
    known = {DEMO_CALENDAR_ID}
    for calendar_id, event_id in events:
        if calendar_id not in known:
            emulator.add_calendar(calendar_id, access_token=DEMO_ACCESS_TOKEN)
            known.add(calendar_id)
        emulator.add_event(calendar_id, event_id)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until interrupted; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not _is_loopback(args.host):
        parser.error(
            f"--host {args.host!r} is not a loopback address: this is a test server with well-known "
            "credentials, so it only listens on 127.0.0.1, ::1 or localhost"
        )
    if args.keyfile and not args.certfile:
        parser.error("--keyfile needs --certfile")
    tls_context = None
    if args.certfile:
        try:
            tls_context = server_tls_context(args.certfile, args.keyfile)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            parser.error(f"cannot load --certfile/--keyfile: {exc}")
    emulator = CronofyEmulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        client_id=args.client_id,
        rate_limit_per_second=args.rate_limit_per_second,
        rate_limit_per_minute=args.rate_limit_per_minute,
        unknown_scheduling_key_status=args.unknown_key_status,
        verbose=args.verbose,
        ssl_context=tls_context,
        latency=args.latency,
        batch_rate_cost=args.batch_rate_cost,
        repeated_scheduling_key=args.repeated_scheduling_key,
    )
    emulator.rotate_refresh_tokens = args.rotate_refresh_tokens
    emulator.add_access_token(DEMO_ACCESS_TOKEN)
    emulator.add_refresh_token(DEMO_REFRESH_TOKEN)
    emulator.add_calendar(DEMO_CALENDAR_ID, access_token=DEMO_ACCESS_TOKEN)
    if args.seed_demo:
        seed_demo(emulator)
    try:
        seed_given(emulator, args.agent, args.event)
    except ValueError as exc:  # a key given twice with --repeated-scheduling-key refuse
        parser.error(f"--agent: {exc}")

    stop_requested = threading.Event()

    def on_stop_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    try:
        emulator.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    # Ctrl-C and SIGTERM only set a flag: a KeyboardInterrupt raised wherever the main thread
    # happens to be could leave a lock held and the shutdown below waiting on it.
    previous = {sig: signal.signal(sig, on_stop_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        connection = emulator.airflow_connection_json(
            access_token=DEMO_ACCESS_TOKEN, refresh_token=DEMO_REFRESH_TOKEN
        )
        # flush: whoever started us reads these lines through a pipe.
        print(f"Cronofy emulator listening on {emulator.url}", flush=True)
        print(f"AIRFLOW_CONN_CRONOFY_DEFAULT={shlex.quote(connection)}", flush=True)
        calendars = sorted({DEMO_CALENDAR_ID, *(calendar_id for calendar_id, _ in args.event)})
        print(
            f"{'Calendars' if len(calendars) > 1 else 'Calendar'} {', '.join(calendars)} "
            f"{'belong' if len(calendars) > 1 else 'belongs'} to the access token's account"
            + (
                f"; seeded {_count(args.agent, 'agent')} and {_count(args.event, 'event')}"
                if args.agent or args.event
                else ""
            )
            + ". Ctrl-C to stop.",
            file=sys.stderr,
            flush=True,
        )
        if args.certfile:
            print(
                f"Serving HTTPS: clients must trust {args.certfile} "
                f"(e.g. REQUESTS_CA_BUNDLE={shlex.quote(args.certfile)}).",
                file=sys.stderr,
                flush=True,
            )
        # Waiting in short slices keeps the main thread responsive to the signals.
        while not stop_requested.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
