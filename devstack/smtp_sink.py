"""The local stack's one SMTP server (aiosmtpd): it records what it receives and has
the fault modes the tests, drills and benchmarks need."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import itertools
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from devstack.net import LOCALHOST, free_port, wait_for

SMTP_MODES = ("ok", "down", "reject", "tempfail", "stall", "drop")
# The modes in which an aiosmtpd server listens (the others: nothing, or a silent socket).
_SMTP_LISTENING = ("ok", "reject", "tempfail", "drop")


@dataclass
class ReceivedMail:
    """One message accepted by :class:`SmtpSink`."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    received_at: float = field(default_factory=time.time)
    authenticated: bool = False  # the client logged in (a sink with a password)

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def text(self) -> str:
        """The text/plain body (falls back to the first body part, then raw)."""
        body = self.message.get_body(preferencelist=("plain", "html"))
        if body is None:
            return self.raw.decode("utf-8", "replace")
        return body.get_content()

    @property
    def html(self) -> str | None:
        body = self.message.get_body(preferencelist=("html",))
        return None if body is None else body.get_content()

    def __getitem__(self, header: str) -> Any:
        return self.message[header]


class _SinkHandler:
    """aiosmtpd handler that consults the sink's current mode."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    def _refusal(self, stage: str, detail: str) -> str | None:
        mode = self.sink.mode
        if mode == "reject":
            self.sink._record_refusal(mode, stage, detail)
            return "550 5.1.1 Mailbox unavailable (test sink in reject mode)"
        if mode == "tempfail":
            self.sink._record_refusal(mode, stage, detail)
            return "451 4.3.0 Temporary failure, try again later (test sink in tempfail mode)"
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        refusal = self._refusal("RCPT", address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        self.sink._record_greeting()
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        refusal = self._refusal("DATA", ",".join(envelope.rcpt_tos))
        if refusal:
            return refusal
        if self.sink.delay_seconds:
            await asyncio.sleep(self.sink.delay_seconds)  # a slow server, per message
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.sink._record_message(
            ReceivedMail(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,
                raw=raw,
                authenticated=bool(session.authenticated),
            )
        )
        if self.sink.mode == "drop":
            # The message is taken, then the connection goes before the reply: the client
            # cannot know it was delivered.
            server.transport.abort()
        return "250 Message accepted for delivery"


class _StallServer:
    """Accepts TCP connections and never says a word (an SMTP server that hangs)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.accepted = 0

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wait_for(
            lambda: sock.bind((self.host, self.port)) is None,
            timeout=5,
            message=f"binding {self.host}:{self.port}",
        )
        sock.listen(64)
        sock.settimeout(0.1)
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="smtp-stall", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self._held.append(conn)
            self.accepted += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._held.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class SmtpSink:
    """An SMTP server on 127.0.0.1 that records what it receives.

    Modes (``set_mode`` or the shortcut methods):

    - ``"ok"``: accept and record every message;
    - ``"down"``: nothing listens, connections are refused (``up()`` restores);
    - ``"reject"``: answer 550 to RCPT and DATA (a permanent failure);
    - ``"tempfail"``: answer 451 to RCPT and DATA (a transient failure);
    - ``"stall"``: accept TCP connections but never send a byte (a hung server);
    - ``"drop"``: take each message, then drop the connection before the reply.

    ``slow(seconds)`` makes a healthy server take that long per message. The port stays
    the same across modes. With ``save_dir`` every message is also written there as an
    .eml file, and ``announce`` (when given) gets one line per message. With ``tls`` (a
    server SSLContext) and ``password`` it insists on STARTTLS, then on a PLAIN login with
    that password, before it takes mail; ``logins`` records each attempt.
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = LOCALHOST,
        save_dir: str | os.PathLike[str] | None = None,
        announce: Callable[[str], None] | None = None,
        tls: ssl.SSLContext | None = None,
        password: str | None = None,
    ) -> None:
        self.host = host
        self.tls = tls
        self.password = password
        # (mechanism, login, accepted) for each login attempt
        self.logins: list[tuple[str, bytes, bool]] = []
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.announce = announce
        self._saved = itertools.count(1)
        self.port = port or free_port(host)
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._refusals: list[tuple[str, str, str]] = []
        self._mode = "down"
        self._controller = None
        self._stall: _StallServer | None = None
        # Seconds the server takes to accept each message (a slow but healthy server).
        self.delay_seconds = 0.0
        # EHLO greetings seen: one per SMTP connection (sessions reuse their connection).
        self.greetings = 0

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> SmtpSink:
        self.set_mode("ok")
        return self

    def stop(self) -> None:
        self._stop_listeners()
        self._mode = "down"

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start_controller(self) -> None:
        from aiosmtpd.controller import Controller

        def _start() -> bool:
            controller = Controller(
                _SinkHandler(self),
                hostname=self.host,
                port=self.port,
                ready_timeout=5.0,
                server_hostname="sink.test" if self.tls is None else self.host,
                **self._secure_options(),
            )
            controller.start()
            self._controller = controller
            return True

        # The port may linger for a moment after a previous listener closed.
        wait_for(_start, timeout=10, interval=0.1, message=f"SMTP sink on port {self.port}")

    def _secure_options(self) -> dict[str, Any]:
        if self.tls is None:
            return {}
        from aiosmtpd.smtp import AuthResult, LoginPassword

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.password == (
                (self.password or "").encode()
            )
            with self._lock:
                self.logins.append((mechanism, getattr(auth_data, "login", b""), ok))
            return AuthResult(success=ok, handled=False)  # handled=False: the server says 535

        return {
            "tls_context": self.tls,
            "require_starttls": True,
            "authenticator": authenticator,
            "auth_require_tls": True,
            "auth_exclude_mechanism": ["LOGIN"],  # one mechanism: a refused login ends at once
        }

    def _stop_listeners(self) -> None:
        if self._controller is not None:
            controller, self._controller = self._controller, None
            controller.stop()
        if self._stall is not None:
            stall, self._stall = self._stall, None
            stall.stop()

    # -- modes -----------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in SMTP_MODES:
            raise ValueError(f"unknown SMTP sink mode {mode!r}; expected one of {SMTP_MODES}")
        current = self._mode
        if mode == current:
            return
        needs_smtp = mode in _SMTP_LISTENING
        has_smtp = self._controller is not None
        if not (needs_smtp and has_smtp):
            self._stop_listeners()
        self._mode = mode
        if needs_smtp and self._controller is None:
            self._start_controller()
        elif mode == "stall":
            self._stall = _StallServer(self.host, self.port)
            self._stall.start()

    def ok(self) -> None:
        self.set_mode("ok")

    def up(self) -> None:
        """Bring the listener back (mode ``"ok"``) after ``down()``/``stall()``."""
        self.set_mode("ok")

    def down(self) -> None:
        self.set_mode("down")

    def reject(self) -> None:
        self.set_mode("reject")

    def tempfail(self) -> None:
        self.set_mode("tempfail")

    def stall(self) -> None:
        self.set_mode("stall")

    def drop(self) -> None:
        self.set_mode("drop")

    def slow(self, seconds: float) -> None:
        """Each message takes ``seconds`` to be accepted (0: back to full speed)."""
        self.delay_seconds = seconds

    # -- what arrived ----------------------------------------------------------

    def _record_greeting(self) -> None:
        with self._lock:
            self.greetings += 1

    def _record_message(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)
            number = next(self._saved)
        where = ""
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            path = self.save_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{number:04d}.eml"
            path.write_bytes(mail.raw)
            where = f" -> {path}"
        if self.announce is not None:
            self.announce(f"mail to {', '.join(mail.rcpt_tos)}: {mail.subject!r}{where}")

    def _record_refusal(self, mode: str, stage: str, detail: str) -> None:
        with self._lock:
            self._refusals.append((mode, stage, detail))

    @property
    def messages(self) -> list[ReceivedMail]:
        """A snapshot of the messages received so far, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def refusals(self) -> list[tuple[str, str, str]]:
        """``(mode, "RCPT"|"DATA", address-or-recipients)`` for each refused step."""
        with self._lock:
            return list(self._refusals)

    @property
    def stalled_connections(self) -> int:
        return self._stall.accepted if self._stall is not None else 0

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._refusals.clear()

    def messages_to(self, address: str) -> list[ReceivedMail]:
        address = address.lower()
        return [m for m in self.messages if address in (r.lower() for r in m.rcpt_tos)]

    def wait_for_messages(self, count: int = 1, timeout: float = 10.0) -> list[ReceivedMail]:
        """Wait until at least ``count`` messages arrived; return them all."""
        return wait_for(
            lambda: (msgs := self.messages) and len(msgs) >= count and msgs,
            timeout=timeout,
            message=f"{count} message(s) at the SMTP sink (have {len(self.messages)})",
        )

    def env(self) -> dict[str, str]:
        """The app's SMTP settings for this sink."""
        return {
            "SMTP_HOST": self.host,
            "SMTP_PORT": str(self.port),
            "SMTP_STARTTLS": "false",
            "SMTP_USERNAME": "",
            "SMTP_PASSWORD": "",
        }

    def __repr__(self) -> str:
        return f"<SmtpSink {self.host}:{self.port} mode={self.mode} messages={len(self.messages)}>"


# --------------------------------------------------------------------------- in a process


def _serve(connection, port: int, delay_seconds: float) -> None:
    sink = SmtpSink(port=port)
    sink.slow(delay_seconds)
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
    """:class:`SmtpSink` in a process of its own, driven over a pipe: a measuring client
    should not share its interpreter with a mail server.

        with SinkProcess(delay_seconds=0.05) as sink:
            env = sink.env()            # SMTP_HOST / SMTP_PORT for the app's processes
            sink.set_mode("stall")      # any of SMTP_MODES
            sink.stats()                # {"messages": [(handoff_id, rcpt, received_at)], ...}
    """

    def __init__(self, delay_seconds: float = 0.0) -> None:
        import multiprocessing

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
        return {"SMTP_HOST": LOCALHOST, "SMTP_PORT": str(self.port)}

    def set_mode(self, mode: str) -> None:
        self._call("mode", mode)

    def stats(self) -> dict[str, Any]:
        return self._call("stats", None)


# --------------------------------------------------------------------------- on its own


def main(argv: list[str] | None = None) -> int:
    """``python -m devstack.smtp_sink [--host H] [--port P] [--dir D]``: the sink until
    SIGINT/SIGTERM, each message saved as an .eml file under D and logged in one line."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="A local SMTP server that relays nothing.")
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=None, help="where .eml files go")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    sink = SmtpSink(port=args.port, host=args.host, save_dir=args.dir, announce=say)
    try:
        sink.start()
    except (OSError, TimeoutError) as exc:
        say(f"mail sink: cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    say(f"mail sink listening on {args.host}:{args.port}")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1):
        pass
    sink.stop()
    say("mail sink stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
