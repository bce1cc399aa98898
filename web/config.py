"""Configuration from the environment, with defaults that run on a laptop."""

from __future__ import annotations

import os
import re
from pathlib import Path

from redis.backoff import NoBackoff
from redis.retry import Retry

from adapters.broadcast import DEFAULT_PUBLISH_TIMEOUT_SECONDS
from adapters.presence import PRESENCE_DEFAULTS
from adapters.psa import default_connector as PSA_CONNECTORS
from models.deliveries import EMAIL_DEFAULTS
from models.handoff_steps import POLICY_MINUTE_SECONDS
from models.psa.settings import DEFAULTS as PSA_DEFAULTS
from models.sso.connection import DEFAULT_TIMEOUT_SECONDS as SSO_DEFAULT_TIMEOUT_SECONDS

ROOT = Path(__file__).resolve().parent.parent
RATE_LIMIT_REDIS_TIMEOUT_SECONDS = 0.2
# How often each web node re-checks the credentials of its open sockets (web/realtime.py).
DEFAULT_CREDENTIAL_CHECK_SECONDS = 2.0


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _seconds_or_none(env, key: str) -> float | None:
    value = env.get(key)
    return float(value) if value else None


# The one PostgreSQL driver the project ships (requirements.txt) and makes cooperative under
# eventlet (psycogreen, wsgi.py). SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3,
# which is not installed, so the bare forms are pinned to it here.
POSTGRES_DRIVER = "postgresql+psycopg2"
_POSTGRES_SCHEME = re.compile(r"^(?:postgres|postgresql)(?:\+(?P<driver>[A-Za-z0-9_]+))?://")


def normalize_database_url(url: str) -> str:
    """`postgres://`, `postgresql://` and `postgres+driver://` as hosts hand them out, in
    SQLAlchemy's spelling; a bare form gets the shipped driver, an explicit one is kept."""
    match = _POSTGRES_SCHEME.match(url)
    if match is None:
        return url
    driver = match.group("driver")
    scheme = f"postgresql+{driver}" if driver else POSTGRES_DRIVER
    return f"{scheme}://{url[match.end() :]}"


def database_url(env: dict[str, str] | os._Environ = os.environ) -> str:
    url = env.get("DATABASE_URL")
    if not url:
        (ROOT / "var").mkdir(exist_ok=True)
        return f"sqlite:///{ROOT / 'var' / 'escalation.db'}"
    return normalize_database_url(url)


def role_url(env: dict[str, str] | os._Environ, name: str) -> str:
    """`MIGRATION_DATABASE_URL` or `SYSTEM_DATABASE_URL` (docs/deploy.md); '' when unset,
    which means DATABASE_URL serves that role too."""
    url = env.get(name) or ""
    return normalize_database_url(url) if url else ""


# Connection pools per process type (docs/deploy.md): a web process serves many requests at
# once on green threads; a worker child runs one task at a time; beat sends, never queries.
POOL_DEFAULTS = {"web": (10, 10), "worker": (2, 2), "beat": (1, 1)}


# The system role's pool: look-ups before the tenant is known, the sweeps (docs/deploy.md).
SYSTEM_POOL_DEFAULTS = {"web": (4, 6), "worker": (2, 2), "beat": (1, 1)}


def system_engine_options(config: dict, process_type: str) -> dict:
    """The system role's engine: as the runtime one, with a smaller pool of its own."""
    options = engine_options(
        {**config, "SQLALCHEMY_DATABASE_URI": config["SYSTEM_DATABASE_URL"]}, process_type
    )
    if "pool_size" in options:
        size, overflow = SYSTEM_POOL_DEFAULTS.get(process_type, SYSTEM_POOL_DEFAULTS["web"])
        options.update(pool_size=size, max_overflow=overflow)
        options["connect_args"] = {
            **options["connect_args"],
            "application_name": f"escalation-{process_type}-system",
        }
    return options


def engine_options(config: dict, process_type: str) -> dict:
    """SQLAlchemy engine options: a dead connection is found before use (pre-ping), and on
    PostgreSQL a server that is down or stuck costs seconds, not a hung request."""
    options: dict = {"pool_pre_ping": True}
    if not str(config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql"):
        return options
    statement_timeout_ms = int(config.get("DB_STATEMENT_TIMEOUT_MS") or 15000)
    size, overflow = POOL_DEFAULTS.get(process_type, POOL_DEFAULTS["web"])
    options.update(
        pool_size=int(config.get("DB_POOL_SIZE") or size),
        max_overflow=int(config.get("DB_MAX_OVERFLOW") or overflow),
        pool_timeout=float(config.get("DB_POOL_TIMEOUT") or 5),
        # Closed by the server after a restart or by a firewall's idle cut: replace them.
        pool_recycle=1800,
        connect_args={
            # libpq counts whole seconds, at least 2.
            "connect_timeout": int(config.get("DB_CONNECT_TIMEOUT") or 2),
            "options": f"-c statement_timeout={statement_timeout_ms}",
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "application_name": f"escalation-{process_type}",
        },
    )
    return options


def from_env(env: dict[str, str] | os._Environ = os.environ) -> dict:
    """Every setting the web and worker processes read, in one place."""
    redis_url = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    return {
        **_process(env),
        **_realtime(env, redis_url),
        **_email(env),
        **_security(env, redis_url),
        **_psa(env),
        **_sso(env),
        **_http(env),
    }


def _process(env) -> dict:
    """Which process this is, its database pool, proxies and what operators read."""
    return {
        "SQLALCHEMY_DATABASE_URI": database_url(env),
        # Tenant isolation (models/tenancy.py): the schema owner `release` migrates through,
        # and the role that bypasses row security for work across accounts. '' = the same
        # URL as DATABASE_URL.
        "MIGRATION_DATABASE_URL": role_url(env, "MIGRATION_DATABASE_URL"),
        "SYSTEM_DATABASE_URL": role_url(env, "SYSTEM_DATABASE_URL"),
        # Which process this is ("web", "worker", "beat"): picks pool defaults and log labels.
        "PROCESS_TYPE": env.get("PROCESS_TYPE") or "web",
        # Connection pool and fault bounds (web.config.engine_options; PostgreSQL only).
        "DB_POOL_SIZE": env.get("DB_POOL_SIZE") or "",
        "DB_MAX_OVERFLOW": env.get("DB_MAX_OVERFLOW") or "",
        "DB_POOL_TIMEOUT": env.get("DB_POOL_TIMEOUT") or "",
        "DB_CONNECT_TIMEOUT": env.get("DB_CONNECT_TIMEOUT") or "",
        "DB_STATEMENT_TIMEOUT_MS": env.get("DB_STATEMENT_TIMEOUT_MS") or "",
        # Behind a proxy (deploy/nginx.conf): how many proxies set each X-Forwarded-* header.
        # 0 (the default) trusts none, so a client cannot fake its address.
        "PROXY_FIX_X_FOR": int(env.get("PROXY_FIX_X_FOR") or 0),
        "PROXY_FIX_X_PROTO": int(env.get("PROXY_FIX_X_PROTO") or 0),
        "PROXY_FIX_X_HOST": int(env.get("PROXY_FIX_X_HOST") or 0),
        "PROXY_FIX_X_PORT": int(env.get("PROXY_FIX_X_PORT") or 0),
        "PROXY_FIX_X_PREFIX": int(env.get("PROXY_FIX_X_PREFIX") or 0),
        # GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>` when set.
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or "",
        # "json": one JSON object per log line; anything else: plain text.
        "LOG_FORMAT": env.get("LOG_FORMAT") or "text",
        # "test" or "local" outside production (unset: production). Test-only settings
        # such as TEST_CLOCK_FILE are refused unless it says so.
        "APP_ENV": env.get("APP_ENV") or "production",
        # Test-only: a clock file every process follows (models/clock.py).
        "TEST_CLOCK_FILE": env.get("TEST_CLOCK_FILE") or "",
    }


def _realtime(env, redis_url: str) -> dict:
    """Redis, Socket.IO, presence, the outbox and the live path."""
    return {
        "REDIS_URL": redis_url,
        # The Socket.IO message queue channel, set explicitly on every emitting side.
        "SOCKETIO_CHANNEL": env.get("SOCKETIO_CHANNEL") or "escalation-mode-socketio",
        # The async mode lives in this one setting so the server can move off eventlet.
        "SOCKETIO_ASYNC_MODE": env.get("SOCKETIO_ASYNC_MODE") or "eventlet",
        # The Socket.IO message queue (web nodes subscribe, workers publish); REDIS_URL unless
        # pub/sub should live on its own Redis.
        "SOCKETIO_MESSAGE_QUEUE": env.get("SOCKETIO_MESSAGE_QUEUE") or redis_url,
        # Presence (docs/realtime.md): a connection counts as open this long after the last
        # heartbeat of the web node that holds it; heartbeats come well inside the TTL.
        # The defaults are adapters.presence.PRESENCE_DEFAULTS.
        **{key: float(env.get(key) or default) for key, default in PRESENCE_DEFAULTS.items()},
        # The outbox relay re-publishes events the web process could not hand to the broker
        # (Redis down) once they are this old.
        "OUTBOX_RELAY_AFTER_SECONDS": float(env.get("OUTBOX_RELAY_AFTER_SECONDS") or 5),
        # The web process emits live events itself right after the commit (docs/realtime.md);
        # 0 leaves every emit to the worker: the earlier design, kept so both can be measured
        # side by side (BENCHMARKS.md, measure 8).
        "EMIT_FROM_WEB": _bool(env.get("EMIT_FROM_WEB"), default=True),
        # How long the web process may spend handing a notification to the broker.
        "PUBLISH_TIMEOUT_SECONDS": float(
            env.get("PUBLISH_TIMEOUT_SECONDS") or DEFAULT_PUBLISH_TIMEOUT_SECONDS
        ),
        # Test-only: how many seconds a "minute" of the escalation policy lasts
        # (models.handoff_steps.POLICY_MINUTE_SECONDS).
        "POLICY_MINUTE_SECONDS": float(env.get("POLICY_MINUTE_SECONDS") or POLICY_MINUTE_SECONDS),
        # Test-only: how often beat looks for due unclaimed steps, and for shifts that began;
        # None keeps beat's own schedule (workers.settings.BEAT_SCHEDULE: 15 s and 60 s).
        "HANDOFF_STEPS_INTERVAL_SECONDS": _seconds_or_none(env, "HANDOFF_STEPS_INTERVAL_SECONDS"),
        "SHIFT_NOTICES_INTERVAL_SECONDS": _seconds_or_none(env, "SHIFT_NOTICES_INTERVAL_SECONDS"),
    }


def _email(env) -> dict:
    """SMTP and email delivery (docs/email.md)."""
    return {
        "SMTP_HOST": env.get("SMTP_HOST") or "",
        "SMTP_PORT": int(env.get("SMTP_PORT") or 25),
        "SMTP_USERNAME": env.get("SMTP_USERNAME") or "",
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD") or "",
        "SMTP_STARTTLS": _bool(env.get("SMTP_STARTTLS")),
        "SMTP_TIMEOUT": float(env.get("SMTP_TIMEOUT") or 10),
        "MAIL_FROM": env.get("MAIL_FROM") or "Escalation Mode <escalations@localhost>",
        # Email delivery (docs/email.md); the defaults are models.deliveries.EMAIL_DEFAULTS.
        **{key: float(env.get(key) or default) for key, default in EMAIL_DEFAULTS.items()},
        # A sender's hold on a delivery; must outlast one SMTP conversation (~8 x SMTP_TIMEOUT).
        "DELIVERY_LEASE_SECONDS": float(env.get("DELIVERY_LEASE_SECONDS") or 120),
        # The sweeper re-sends a delivery this long after it should have been attempted.
        "DELIVERY_SWEEP_GRACE_SECONDS": float(env.get("DELIVERY_SWEEP_GRACE_SECONDS") or 60),
    }


def _security(env, redis_url: str) -> dict:
    """Signing, cookies, sign-in limits, API rate limits (docs/security.md)."""
    return {
        # Required: the web process refuses to start without a good one (web/secret_key.py).
        "SECRET_KEY": env.get("SECRET_KEY") or None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool(env.get("SESSION_COOKIE_SECURE")),
        # Login rate-limit counters (docs/pages.md): shared in Redis so every web process
        # counts the same attempts; if Redis is unreachable, each process counts in memory.
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI") or redis_url,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        # A frozen Redis must not hold up requests: counters answer fast or not at all.
        "RATELIMIT_STORAGE_OPTIONS": {
            "socket_timeout": RATE_LIMIT_REDIS_TIMEOUT_SECONDS,
            "socket_connect_timeout": RATE_LIMIT_REDIS_TIMEOUT_SECONDS,
            "retry": Retry(NoBackoff(), 0),
        },
        "LOGIN_RATE_LIMIT_PER_ADDRESS": env.get("LOGIN_RATE_LIMIT_PER_ADDRESS")
        or "20 per minute;100 per hour",
        "LOGIN_RATE_LIMIT_PER_ADDRESS_AND_EMAIL": env.get("LOGIN_RATE_LIMIT_PER_ADDRESS_AND_EMAIL")
        or "5 per minute;20 per hour",
        # Per email, sign-ins are slowed down, never refused (web/pages/security.py).
        "LOGIN_SLOWDOWN_AFTER": int(env.get("LOGIN_SLOWDOWN_AFTER") or 5),
        "LOGIN_SLOWDOWN_STEP_SECONDS": float(env.get("LOGIN_SLOWDOWN_STEP_SECONDS") or 0.5),
        "LOGIN_SLOWDOWN_MAX_SECONDS": float(env.get("LOGIN_SLOWDOWN_MAX_SECONDS") or 4),
        "LOGIN_SLOWDOWN_WINDOW_SECONDS": int(env.get("LOGIN_SLOWDOWN_WINDOW_SECONDS") or 900),
        # Per API token (docs/security.md); 429 `rate_limited` with Retry-After past it.
        "API_RATE_LIMIT_PER_TOKEN": env.get("API_RATE_LIMIT_PER_TOKEN")
        or "600 per minute;10000 per hour",
        # How often each web node re-checks the credentials of its open sockets.
        "CREDENTIAL_CHECK_SECONDS": float(
            env.get("CREDENTIAL_CHECK_SECONDS") or DEFAULT_CREDENTIAL_CHECK_SECONDS
        ),
        # Strict-Transport-Security is sent only when the site is served over TLS.
        "HSTS_SECONDS": int(env.get("HSTS_SECONDS") or 0),
    }


def _sso(env) -> dict:
    """Single sign-on (docs/sso.md). Client secrets are sealed with PSA_ENCRYPTION_KEYS."""
    return {
        # dns (default): a domain serves sign-ins once its TXT record proves it; none:
        # any domain no other account holds (trials, tests).
        "SSO_DOMAIN_VERIFICATION": (env.get("SSO_DOMAIN_VERIFICATION") or "dns").lower(),
        "SSO_TIMEOUT_SECONDS": float(env.get("SSO_TIMEOUT_SECONDS") or SSO_DEFAULT_TIMEOUT_SECONDS),
        # Test-only: read the Microsoft and Google discovery documents from here.
        "SSO_TEST_DISCOVERY_BASE": env.get("SSO_TEST_DISCOVERY_BASE") or "",
    }


def _psa(env) -> dict:
    """PSA connections (docs/psa.md)."""
    return {
        # PSA connections (docs/psa.md): Fernet keys, comma-separated; the first encrypts,
        # any decrypts (rotation). Without them no PSA connection can be saved.
        "PSA_ENCRYPTION_KEYS": env.get("PSA_ENCRYPTION_KEYS") or "",
        **{key: float(env.get(key) or default) for key, default in PSA_DEFAULTS.items()},
        # Each connector's own settings (adapters/psa), such as PSA_AUTOTASK_ZONE_URL.
        **{key: env.get(key) or default for key, default in PSA_CONNECTORS.options().items()},
    }


def _http(env) -> dict:
    """The HTTP server, its links and the OpenAPI document."""
    return {
        "BASE_URL": (env.get("BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
        "PORT": int(env.get("PORT") or 5000),
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "API_TITLE": "Escalation Mode",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
    }
