"""The Cronofy emulator in a process of its own, driven over its stdin/stdout.

On a 2-core machine the emulator's CPU use would be charged to the client being measured if both
ran in one process (one GIL), so every benchmark server runs here, in a child process. The parent
sends one JSON command a line and reads one JSON answer a line: set-up (``schedule``) and
inspection (``stats``, ``times``) never go through HTTP, so they add nothing to the counts.

Run as a script by :class:`EmulatorProcess`; imports only the standard library and the emulator.
"""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ANSWER_TIMEOUT = 120.0
"""Seconds to wait for the emulator process's answer to one command (or its start)."""


class EmulatorProcess:
    """A ``CronofyEmulator`` running in a child process, bound to 127.0.0.1 on a free port.

    With ``certfile`` (PEM, and ``keyfile`` unless the key is in it) the emulator serves HTTPS.
    """

    def __init__(
        self,
        python: str = sys.executable,
        *,
        certfile: str | None = None,
        keyfile: str | None = None,
        **emulator_kwargs: Any,
    ) -> None:
        emulator_kwargs.setdefault("host", "127.0.0.1")
        emulator_kwargs.setdefault("port", 0)
        if emulator_kwargs["host"] != "127.0.0.1":
            raise ValueError("benchmark servers listen on 127.0.0.1 only")
        tls = {"certfile": certfile, "keyfile": keyfile} if certfile else None
        self._proc = subprocess.Popen(
            [python, __file__, json.dumps({"emulator": emulator_kwargs, "tls": tls})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        hello = self._read()
        self.url: str = hello["url"]
        self.api_key: str = hello["api_key"]

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        # One answer a command, so nothing is left buffered between two reads: select() on the
        # pipe tells whether the answer came in time.
        ready, _, _ = select.select([self._proc.stdout], [], [], ANSWER_TIMEOUT)
        if not ready:
            self._proc.kill()
            raise RuntimeError(f"emulator process gave no answer in {ANSWER_TIMEOUT:g} s; killed it")
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"emulator process exited (status {self._proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"emulator process: {answer['error']}")
        return answer

    def call(self, command: str, **args: Any) -> dict[str, Any]:
        """Send one command and return its answer."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"command": command, **args}) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def stats(self, *, statuses: bool = False) -> dict[str, Any]:
        """``connections_opened``, ``tls_handshake_failures`` and ``fault_counts``; with ``statuses``,
        also ``requests`` (the number recorded) and ``statuses`` (how many of each status), which
        copies every record."""
        return self.call("stats", statuses=statuses)

    def schedule(self, keys: list[str]) -> None:
        """Schedule a Meeting Agent for every key (state set-up, not HTTP)."""
        self.call("schedule", keys=keys)

    def reset_requests(self) -> None:
        """Forget the recorded requests (the emulator keeps every one in memory)."""
        self.call("reset_requests")

    def times(self) -> list[tuple[float, int | None]]:
        """Arrival time (the emulator's ``time.monotonic()``) and status of every recorded request."""
        return [tuple(pair) for pair in self.call("times")["times"]]  # type: ignore[misc]

    def add_calendar(self, calendar_id: str, access_token: str, event_ids: list[str]) -> None:
        """Register ``access_token``, a calendar it owns and an event with a Meeting Agent for every
        id (state set-up, not HTTP)."""
        self.call("calendar", calendar_id=calendar_id, access_token=access_token, event_ids=event_ids)

    def set_random_faults(self, **settings: Any) -> None:
        """``CronofyEmulator.set_random_faults`` with these keyword arguments."""
        self.call("random_faults", **settings)

    def agent_statuses(self) -> dict[str, str]:
        """Every scheduled agent's status (``scheduled`` or ``cancelled``) by scheduling key."""
        return self.call("agent_statuses")["statuses"]

    def sends_per_key(self) -> dict[str, int]:
        """How many ``DELETE /v1/meeting_agents`` requests arrived for each scheduling key, whatever
        their answer (dropped and faulted ones included)."""
        return self.call("sends_per_key")["sends"]

    def event_writes(self) -> dict[str, int]:
        """How many times each event was changed (answered 202, alone or in a batch), by event id."""
        return self.call("event_writes")["writes"]

    def airflow_connection(self, **extra: Any) -> dict[str, Any]:
        """The ``AIRFLOW_CONN_*`` JSON dict of a ``cronofy`` connection to this emulator."""
        return {"conn_type": "cronofy", "host": self.url, "password": self.api_key, "extra": extra}

    def close(self) -> None:
        """Stop the emulator and wait for its process (killed if it does not stop in 10 s)."""
        if self._proc.poll() is not None:
            return
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            self.call("stop")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _serve(config: dict[str, Any]) -> None:
    sys.path.insert(0, str(ROOT))
    from airflow_provider_cronofy.testing import CronofyEmulator

    kwargs = config["emulator"]
    if isinstance(kwargs.get("latency"), list):
        # [low, high]: a latency drawn per request, uniformly (JSON carries no callable).
        import random

        low, high = kwargs["latency"]
        kwargs["latency"] = lambda: random.uniform(low, high)
    if config["tls"]:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(config["tls"]["certfile"], config["tls"]["keyfile"])
        kwargs["ssl_context"] = context
    emulator = CronofyEmulator(**kwargs).start()

    def reply(payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    reply({"url": emulator.url, "api_key": emulator.api_key})
    try:
        for line in sys.stdin:
            message = json.loads(line)
            command = message["command"]
            if command == "stop":
                reply({"ok": True})
                break
            if command == "stats":
                stats: dict[str, Any] = {
                    "connections_opened": emulator.connections_opened,
                    "tls_handshake_failures": emulator.tls_handshake_failures,
                    "fault_counts": emulator.fault_counts,
                    "status_counts": {str(k): v for k, v in emulator.status_counts.items()},
                    "max_in_flight": emulator.max_in_flight,
                    "requests_received": emulator.requests_received,
                }
                if message.get("statuses"):
                    records = emulator.requests
                    stats["requests"] = len(records)
                    stats["statuses"] = dict(Counter(str(r.status) for r in records))
                reply(stats)
            elif command == "schedule":
                for key in message["keys"]:
                    emulator.schedule_agent(key)
                reply({"ok": True})
            elif command == "reset_requests":
                emulator.reset_requests()
                reply({"ok": True})
            elif command == "calendar":
                emulator.add_access_token(message["access_token"])
                emulator.add_calendar(message["calendar_id"], access_token=message["access_token"])
                for event_id in message["event_ids"]:
                    emulator.add_event(message["calendar_id"], event_id)
                reply({"ok": True})
            elif command == "random_faults":
                emulator.set_random_faults(**{k: v for k, v in message.items() if k != "command"})
                reply({"ok": True})
            elif command == "agent_statuses":
                reply({"statuses": {key: a["status"] for key, a in emulator.scheduled_agents.items()}})
            elif command == "sends_per_key":
                sends = Counter(
                    r.json["scheduling_key"]
                    for r in emulator.requests
                    if r.method == "DELETE" and isinstance(r.json, dict) and "scheduling_key" in r.json
                )
                reply({"sends": dict(sends)})
            elif command == "event_writes":
                reply({"writes": {event_id: n for (_, event_id), n in emulator.event_writes.items()}})
            elif command == "times":
                reply({"times": [(r.time, r.status) for r in emulator.requests]})
            else:
                reply({"error": f"unknown command {command!r}"})
    finally:
        emulator.stop()


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
