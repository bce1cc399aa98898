"""The database handle and the one transaction boundary."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as _FlaskSession
from sqlalchemy import MetaData, event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from models import clock

log = logging.getLogger(__name__)
T = TypeVar("T")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Set while a named piece of system work runs (models.tenancy.system): the session's
# statements then go to the system role's engine.
SYSTEM_SCOPE: ContextVar[str | None] = ContextVar("system_scope", default=None)
# The system role's engine of each app's runtime engine, when it has a URL of its own
# (SYSTEM_DATABASE_URL): the role that bypasses row security (models/tenancy.py).
_SYSTEM_ENGINES: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()


def register_system_engine(runtime: Engine, system: Engine) -> None:
    _SYSTEM_ENGINES[runtime] = system


def system_engine_for(runtime: Engine) -> Engine:
    """The system role's engine, or the runtime engine itself when there is only one URL."""
    return _SYSTEM_ENGINES.get(runtime, runtime)


class Session(_FlaskSession):
    """The app's session: inside `models.tenancy.system(...)` its statements go to the
    system role (or to the one URL when no system role is configured); everywhere else
    to the runtime role, whose transactions carry the current tenant."""

    def get_bind(self, mapper: Any = None, clause: Any = None, bind: Any = None, **kwargs: Any):
        if bind is None and SYSTEM_SCOPE.get() is not None:
            return system_engine_for(self._db.engine)
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


db = SQLAlchemy(model_class=Base, session_options={"class_": Session})


def utcnow() -> datetime:
    """Naive UTC: every timestamp is stored as UTC without tzinfo (portable to SQLite). From
    the service's clock (models.clock: the test clock when tests set one)."""
    return clock.now().replace(tzinfo=None)


@contextmanager
def transaction(expire_on_commit: bool = True) -> Iterator[None]:
    """Run a domain command as one unit: commit on success, roll back on any error.

    Commands own their transaction; the queries they call never commit. (The workers'
    bookkeeping in `deliveries` and `outbox` commits each small step itself: a claimed
    delivery must be visible to other workers before the slow send that follows.)
    `expire_on_commit=False` keeps what the command wrote loaded after the commit, for a
    command that returns rows it just created (nobody else has seen them yet): the response
    is serialized without reading them back.
    """
    session = db.session()
    try:
        yield
        if expire_on_commit:
            session.commit()
        else:
            commit_keeping_loaded()
    except BaseException:
        session.rollback()
        raise


def commit_keeping_loaded() -> None:
    """Commit without expiring the rows the session holds, for a caller that wrote them and
    reads them next: what it wrote is what is stored, so reading it back is a wasted query."""
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def database_unreachable(error: BaseException) -> bool:
    """The database could not be reached or dropped the connection (not a bad statement),
    or the session still holds a transaction such a failure broke."""
    if isinstance(error, exc.OperationalError | exc.PendingRollbackError | exc.TimeoutError):
        return True
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def record_despite_outage(action: Callable[[], T], patience_seconds: float) -> T:
    """Run a write that records something already done outside the database (an email the
    SMTP server accepted, an event emitted). If the database is unreachable, roll back and
    try again until it answers, for up to `patience_seconds` (keep it inside the lease the
    caller holds): giving up would leave the work looking undone, and the sweeper or relay
    would do it a second time once the database is back."""
    deadline = time.monotonic() + patience_seconds
    delay = 0.25
    while True:
        try:
            return action()
        except Exception as error:
            if not database_unreachable(error):
                raise
            db.session.rollback()
            if time.monotonic() + delay > deadline:
                raise
            log.warning("Database unreachable; recording again in %.2f s: %s", delay, error)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Several writers (web, worker, beat, racing claims) share one SQLite file:
    WAL lets readers run beside the writer, busy_timeout makes writers queue."""
    module = type(dbapi_connection).__module__
    if "sqlite" not in module:
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def insert_on_conflict(model):
    """An INSERT that takes ON CONFLICT clauses (`on_conflict_do_nothing` / `_do_update`),
    for the database in use: PostgreSQL and SQLite both have them."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"No ON CONFLICT insert for the {dialect} dialect")  # pragma: no cover
