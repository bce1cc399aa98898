"""The real services the integration and browser tests run against, from devstack/ (the
one place that starts Redis, the SMTP sink, PostgreSQL, nginx and the app's processes).

``tests/integration/conftest.py`` wraps them in fixtures; this module only adds what is
the tests' own (the reason a PostgreSQL test skips).
"""

from __future__ import annotations

from devstack.app import (
    BEAT_READY,
    PROCFILE_WORKER_FLAGS,
    WORKER_READY,
    app_env,
    beat_command,
    celery_executable,
    create_account,
    flask_cli,
    procfile_entry,
    sqlite_url,
    web_command,
    worker_command,
)
from devstack.browser import CHROMIUM_ARGS, chromium_executable
from devstack.net import (
    LOCALHOST,
    REPO_ROOT,
    free_port,
    port_is_free,
    python_env,
    tail,
    wait_for,
    wait_for_port,
)
from devstack.nginx import NginxProxy, find_nginx, render_nginx_site
from devstack.postgres import PrivatePostgres, postgres_url_from_env, temporary_postgres_database
from devstack.processes import (
    ManagedProcess,
    ProcessGroup,
    ProcessStartError,
    http_ready,
    log_contains,
    port_open,
    start_process,
)
from devstack.redis_server import RedisServer, find_redis_server
from devstack.smtp_sink import SMTP_MODES, ReceivedMail, SmtpSink

POSTGRES_SKIP_REASON = (
    "TEST_POSTGRES_URL is not set: start a throwaway server with "
    "`export TEST_POSTGRES_URL=$(scripts/test_postgres.sh)` (make test does this)"
)

__all__ = [
    "app_env",
    "BEAT_READY",
    "CHROMIUM_ARGS",
    "LOCALHOST",
    "POSTGRES_SKIP_REASON",
    "PROCFILE_WORKER_FLAGS",
    "REPO_ROOT",
    "SMTP_MODES",
    "WORKER_READY",
    "ManagedProcess",
    "NginxProxy",
    "PrivatePostgres",
    "ProcessGroup",
    "ProcessStartError",
    "ReceivedMail",
    "RedisServer",
    "SmtpSink",
    "beat_command",
    "celery_executable",
    "chromium_executable",
    "create_account",
    "find_nginx",
    "find_redis_server",
    "flask_cli",
    "free_port",
    "http_ready",
    "log_contains",
    "port_is_free",
    "port_open",
    "postgres_url_from_env",
    "procfile_entry",
    "python_env",
    "render_nginx_site",
    "sqlite_url",
    "start_process",
    "tail",
    "temporary_postgres_database",
    "wait_for",
    "wait_for_port",
    "web_command",
    "worker_command",
]
