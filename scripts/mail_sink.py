#!/usr/bin/env python3
"""A local SMTP server that keeps every message as an .eml file.

    python scripts/mail_sink.py [--host 127.0.0.1] [--port 1025] [--dir var/mail]

Nothing is relayed anywhere. Each message is written to
``<dir>/<timestamp>-<n>.eml`` (open it with any mail client, or read it as
text) and one line per message is logged: recipients, subject, file.
Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import itertools
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO_ROOT / "var" / "mail"

log = logging.getLogger("mail_sink")


class SaveToDirectory:
    """aiosmtpd handler: save each message under ``directory`` and log it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        with self._lock:
            n = next(self._counter)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.directory / f"{stamp}-{n:04d}.eml"
        path.write_bytes(raw)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        log.info(
            "mail to %s: %r -> %s",
            ", ".join(envelope.rcpt_tos),
            str(message.get("Subject", "")),
            _display(path),
        )
        return "250 Message accepted for delivery"


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def start(host: str = "127.0.0.1", port: int = 1025, directory: Path = DEFAULT_DIR) -> Controller:
    """Start the sink in a background thread; call ``.stop()`` on the result."""
    controller = Controller(
        SaveToDirectory(Path(directory)),
        hostname=host,
        port=port,
        server_hostname="mail-sink.local",
    )
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where .eml files go")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    # aiosmtpd logs every SMTP command at INFO; one line per message is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)

    try:
        controller = start(args.host, args.port, args.dir)
    except OSError as exc:
        log.error("mail sink: cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 1
    log.info(
        "mail sink listening on %s:%s; messages are saved under %s",
        args.host,
        args.port,
        _display(args.dir.resolve()),
    )

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1):
        pass
    controller.stop()
    log.info("mail sink stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
