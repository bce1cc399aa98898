"""A PostgreSQL database with the three roles of docs/deploy.md ("Database roles"), for the
tests and benchmarks of tenant isolation: the schema owner (migrates), the runtime role
(NOBYPASSRLS, owns nothing) and the system role (BYPASSRLS). Roles are cluster-wide, so
their names are unique per use and they are dropped with the database.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from devstack.postgres import connect_params, execute


@dataclass(frozen=True)
class ThreeRoles:
    admin_url: str  # the server's superuser, on this database
    owner_url: str
    runtime_url: str
    system_url: str
    owner: str
    runtime: str
    system: str

    def env(self) -> dict[str, str]:
        """The environment of every process (and of `release`)."""
        return {
            "MIGRATION_DATABASE_URL": self.owner_url,
            "DATABASE_URL": self.runtime_url,
            "SYSTEM_DATABASE_URL": self.system_url,
        }

    def config(self) -> dict[str, str]:
        """The same as an app configuration."""
        return {
            "MIGRATION_DATABASE_URL": self.owner_url,
            "SQLALCHEMY_DATABASE_URI": self.runtime_url,
            "SYSTEM_DATABASE_URL": self.system_url,
        }


@contextlib.contextmanager
def three_role_database(base_url: str, prefix: str = "rls") -> Iterator[ThreeRoles]:
    """A new database next to `base_url`'s (a superuser's URL) owned by a new owner role,
    with a runtime and a system role; all dropped afterwards. Not migrated yet."""
    url = make_url(base_url)
    suffix = uuid.uuid4().hex[:10]
    name = f"{prefix}_{suffix}"
    owner, runtime, system = (f"{prefix}_{role}_{suffix}" for role in ("owner", "app", "system"))
    params = connect_params(url)
    execute(
        params,
        f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER NOBYPASSRLS',
        f'CREATE ROLE "{runtime}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE',
        f'CREATE ROLE "{system}" LOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE',
        f'CREATE DATABASE "{name}" OWNER "{owner}"',
    )
    execute({**params, "dbname": name}, f'REVOKE CREATE ON SCHEMA public FROM "{runtime}"')

    def role_url(role: str) -> str:
        return url.set(username=role, password=None, database=name).render_as_string(
            hide_password=False
        )

    try:
        yield ThreeRoles(
            admin_url=url.set(database=name).render_as_string(hide_password=False),
            owner_url=role_url(owner),
            runtime_url=role_url(runtime),
            system_url=role_url(system),
            owner=owner,
            runtime=runtime,
            system=system,
        )
    finally:
        execute(
            params,
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'DROP ROLE IF EXISTS "{runtime}"',
            f'DROP ROLE IF EXISTS "{system}"',
            f'DROP ROLE IF EXISTS "{owner}"',
        )


def migrate(roles: ThreeRoles) -> None:
    """`release`: the migrations as the owner, then the grants (in this process)."""
    from flask_migrate import upgrade

    from devstack.inprocess import in_process_config
    from models import db
    from web import create_app

    # An app in this process (no message queue, no Redis), on the three URLs.
    app = create_app(in_process_config(roles.runtime_url, **roles.config()))
    with app.app_context():
        upgrade()
        db.engine.dispose()
