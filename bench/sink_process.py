"""An SMTP server (tests/integration/services.SmtpSink) in a process of its own, driven
from the bench: a measuring client should not share its interpreter with a mail server.

    with SinkProcess(delay_seconds=0.05) as sink:
        env = sink.env()            # SMTP_HOST / SMTP_PORT for the app's processes
        sink.set_mode("stall")      # ok | down | stall | reject | tempfail
        sink.stats()                # {"messages": [(handoff_id, rcpt, received_at)], ...}
"""

from __future__ import annotations

import multiprocessing
from typing import Any


def _serve(connection, port: int, delay_seconds: float) -> None:
    from tests.integration.services import SmtpSink

    sink = SmtpSink(port=port)
    sink.delay_seconds = delay_seconds
    sink.start()
    connection.send("ready")
    while True:
        command, argument = connection.recv()
        if command == "mode":
            sink.set_mode(argument)
            connection.send(sink.mode)
        elif command == "stats":
            connection.send(
                {
                    "messages": [
                        (m["X-Escalation-Handoff-Id"], rcpt, m.received_at)
                        for m in sink.messages
                        for rcpt in m.rcpt_tos
                    ],
                    "greetings": sink.greetings,
                    "stalled_connections": sink.stalled_connections,
                }
            )
        elif command == "stop":
            sink.stop()
            connection.send("stopped")
            return


class SinkProcess:
    def __init__(self, delay_seconds: float = 0.0) -> None:
        from tests.integration.services import free_port

        self.port = free_port()
        self.delay_seconds = delay_seconds
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, self.port, delay_seconds), daemon=True, name="smtp-sink"
        )

    def __enter__(self) -> SinkProcess:
        self._process.start()
        if not self._conn.poll(30) or self._conn.recv() != "ready":
            raise RuntimeError("The SMTP sink process did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._call("stop", None)
        finally:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()

    def _call(self, command: str, argument: Any) -> Any:
        self._conn.send((command, argument))
        if not self._conn.poll(30):
            raise RuntimeError(f"The SMTP sink did not answer {command!r}")
        return self._conn.recv()

    @property
    def pid(self) -> int:
        return self._process.pid

    def env(self) -> dict[str, str]:
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port)}

    def set_mode(self, mode: str) -> None:
        self._call("mode", mode)

    def stats(self) -> dict[str, Any]:
        return self._call("stats", None)
