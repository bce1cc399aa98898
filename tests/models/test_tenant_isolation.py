"""Tenant isolation in the database: PostgreSQL row-level security with the three roles of
docs/deploy.md (the schema owner migrates and grants; the runtime role owns nothing and
bypasses nothing; the system role bypasses row security for the work models.tenancy
names). One migrated database per module; each test makes its own tenants."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError

from devstack.three_roles import ThreeRoles, migrate, three_role_database
from models import Handoff, User, db, tenancy
from models.entities import OutboxEvent
from models.escalations import claim
from tests.factories import Tenant, app_config, make_tenant, new_handoff, postgres_url, running_app

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def roles() -> Iterator[ThreeRoles]:
    base = postgres_url()
    if base is None:
        pytest.skip("PostgreSQL not configured: set TEST_POSTGRES_URL (make test does)")
    with three_role_database(base, prefix="rlst") as three:
        migrate(three)
        yield three


@pytest.fixture
def rls_app(roles: ThreeRoles) -> Iterator[Flask]:
    with running_app(app_config(roles.runtime_url, **roles.config())) as app:
        yield app
        _dispose()


def _dispose() -> None:
    db.session.remove()
    tenancy.system_engine().dispose()
    db.engine.dispose()


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def two_tenants(rls_app: Flask, tag: str) -> tuple[Tenant, Tenant, dict, dict]:
    """Two accounts (names unique in the module's database), a handoff each."""
    client = rls_app.test_client()
    alpha, beta = make_tenant(f"Alpha {tag}"), make_tenant(f"Beta {tag}")
    return alpha, beta, new_handoff(client, alpha), new_handoff(client, beta)


def _admin(roles: ThreeRoles) -> sa.Engine:
    return sa.create_engine(roles.admin_url, poolclass=sa.NullPool)


# --------------------------------------------------------------------------- the catalog

TENANT_TABLES = text(
    """
    SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
           EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid
                   AND pg_get_expr(p.polqual, p.polrelid) LIKE '%app.account_id%'
                   AND pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%app.account_id%')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
      AND (c.relname = 'accounts' OR EXISTS (
          SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'account_id'
          AND NOT a.attisdropped))
    ORDER BY 1
    """
)


def test_every_tenant_table_has_forced_row_security_and_a_tenant_policy(roles) -> None:
    """A table with `account_id` (and `accounts`) without row security enabled, forced and
    a policy on the transaction's tenant fails here: protect it in its migration with
    models.rls.protect("<table>")."""
    engine = _admin(roles)
    with engine.connect() as connection:
        rows = connection.execute(TENANT_TABLES).all()
    engine.dispose()
    assert len(rows) >= 16
    unprotected = [row[0] for row in rows if not (row[1] and row[2] and row[3])]
    assert unprotected == []


def test_the_runtime_role_is_no_superuser_bypasses_nothing_and_owns_nothing(roles) -> None:
    engine = _admin(roles)
    with engine.connect() as connection:
        role = connection.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"),
            {"r": roles.runtime},
        ).one()
        owned = connection.execute(
            text(
                "SELECT relname FROM pg_class WHERE pg_has_role(:r, relowner, 'USAGE') "
                "UNION SELECT nspname FROM pg_namespace WHERE pg_has_role(:r, nspowner, 'USAGE')"
            ),
            {"r": roles.runtime},
        ).all()
        truncate = connection.execute(
            text(
                "SELECT grantee, table_name FROM information_schema.role_table_grants "
                "WHERE privilege_type = 'TRUNCATE' AND grantee IN (:r, :s)"
            ),
            {"r": roles.runtime, "s": roles.system},
        ).all()
        views = connection.execute(
            text(
                "SELECT relname FROM pg_class WHERE relkind = 'v' "
                "AND relnamespace = 'public'::regnamespace "
                "AND NOT coalesce('security_invoker=true' = ANY(reloptions), false)"
            )
        ).all()
    engine.dispose()
    assert (role.rolsuper, role.rolbypassrls) == (False, False)
    assert owned == []
    assert truncate == []
    assert views == []  # every view reads with the reader's row security


# --------------------------------------------------------------------------- the runtime role


def test_with_no_tenant_the_runtime_role_sees_no_rows_and_writes_none(roles, two_tenants) -> None:
    alpha, _beta, _a, _b = two_tenants
    admin = _admin(roles)
    runtime = sa.create_engine(roles.runtime_url, poolclass=sa.NullPool)
    with admin.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM handoffs")).scalar() >= 2
    with runtime.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM handoffs")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM users")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM accounts")).scalar() == 0
        changed = connection.execute(text("UPDATE handoffs SET reason = 'x'")).rowcount
        assert changed == 0
    with runtime.connect() as connection, pytest.raises(ProgrammingError):
        connection.execute(
            text("INSERT INTO messages (account_id, session_id, author_id, body, created_at) "
                 "VALUES (:a, 1, :u, 'no tenant', now())"),
            {"a": alpha.account_id, "u": alpha.users["tech"]},
        )  # fmt: skip
    with runtime.connect() as connection, pytest.raises(ProgrammingError):
        connection.execute(text("TRUNCATE handoffs"))
    admin.dispose()
    runtime.dispose()


def test_a_tenant_sees_only_its_rows_and_cannot_write_anothers(rls_app, two_tenants) -> None:
    alpha, beta, alpha_handoff, beta_handoff = two_tenants
    with tenancy.use_tenant(alpha.account_id):
        ids = set(db.session.scalars(select(Handoff.id)))
        users = {user.account_id for user in db.session.scalars(select(User))}
        db.session.commit()
    assert alpha_handoff["id"] in ids and beta_handoff["id"] not in ids
    assert users == {alpha.account_id}
    with tenancy.use_tenant(alpha.account_id), pytest.raises(ProgrammingError) as refused:
        db.session.execute(
            text("INSERT INTO messages (account_id, session_id, author_id, body, created_at) "
                 "VALUES (:a, :s, :u, 'planted', now())"),
            {"a": beta.account_id, "s": beta_handoff["session_id"], "u": beta.users["tech"]},
        )  # fmt: skip
    db.session.rollback()
    assert "row-level security" in str(refused.value)


def test_the_tenant_setting_ends_with_its_transaction_on_a_pooled_connection(
    roles, two_tenants
) -> None:
    alpha, *_ = two_tenants
    engine = sa.create_engine(roles.runtime_url, pool_size=1, max_overflow=0)
    tenancy.install(engine)
    with tenancy.use_tenant(alpha.account_id), engine.connect() as connection:
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        assert connection.execute(text("SELECT count(*) FROM handoffs")).scalar() >= 1
        connection.commit()
    with engine.connect() as connection:  # the same pooled connection, no tenant now
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar() == backend
        setting = connection.execute(text("SELECT current_setting('app.account_id', true)"))
        assert setting.scalar() in ("", None)
        assert connection.execute(text("SELECT count(*) FROM handoffs")).scalar() == 0
    # Even a session-level SET by mistake is not what the policies trust across tenants:
    # each transaction names its own tenant first.
    engine.dispose()


def test_an_unscoped_query_through_the_apps_session_returns_only_the_tenants_rows(
    rls_app, two_tenants
) -> None:
    """The bug row security exists for: a query that forgot `WHERE account_id = ...`."""
    alpha, beta, _a, beta_handoff = two_tenants
    with tenancy.use_tenant(beta.account_id):
        forgot_the_filter = [(h.id, h.account_id) for h in db.session.scalars(select(Handoff))]
        raw = db.session.execute(text("SELECT DISTINCT account_id FROM flow_sessions")).all()
        db.session.commit()
    assert {account for _id, account in forgot_the_filter} == {beta.account_id}
    assert beta_handoff["id"] in {handoff_id for handoff_id, _account in forgot_the_filter}
    assert raw == [(beta.account_id,)]
    assert alpha.account_id != beta.account_id


def test_a_claim_cannot_point_at_another_tenants_user(rls_app, two_tenants) -> None:
    """Foreign keys ignore row security; the same-account keys do not."""
    alpha, beta, alpha_handoff, _b = two_tenants
    with tenancy.use_tenant(alpha.account_id), pytest.raises(IntegrityError):
        db.session.execute(
            sa.update(Handoff)
            .where(Handoff.id == alpha_handoff["id"])
            .values(status="claimed", claimed_by_id=beta.users["eng"])
        )
        db.session.flush()
    db.session.rollback()
    with tenancy.use_tenant(alpha.account_id):
        engineer = db.session.get(User, alpha.users["eng"])
        assert claim(engineer, alpha_handoff["id"]).claimed_by_id == alpha.users["eng"]
        db.session.commit()


def test_a_session_event_cannot_name_another_tenants_session_message_or_writeback(
    rls_app, two_tenants
) -> None:
    """The outbox row that carries a chat message or a writeback to a session's room names
    rows of its own account only (the same-account keys of its migration)."""
    alpha, beta, alpha_handoff, beta_handoff = two_tenants
    client = rls_app.test_client()
    session_path = f"/api/v1/sessions/{beta_handoff['session_id']}"
    message = client.post(
        f"{session_path}/messages", json={"body": "Beta's chat"}, headers=beta.auth("tech")
    )
    writeback = client.post(
        f"{session_path}/psa-writeback", json={"note": "Beta's note"}, headers=beta.auth("tech")
    )
    assert (message.status_code, writeback.status_code) == (201, 201), writeback.get_json()
    own = {"session_id": alpha_handoff["session_id"]}
    for pointing in (
        {"session_id": beta_handoff["session_id"]},
        {**own, "message_id": message.get_json()["id"]},
        {**own, "writeback_id": writeback.get_json()["id"]},
    ):
        with tenancy.use_tenant(alpha.account_id):
            db.session.add(
                OutboxEvent(account_id=alpha.account_id, event="message.created", **pointing)
            )
            with pytest.raises(IntegrityError):
                db.session.flush()
            db.session.rollback()
    with tenancy.use_tenant(alpha.account_id):
        db.session.add(OutboxEvent(account_id=alpha.account_id, event="message.created", **own))
        db.session.commit()


def test_the_api_works_per_tenant_and_anothers_ids_are_404(rls_app, two_tenants) -> None:
    alpha, beta, alpha_handoff, beta_handoff = two_tenants
    client = rls_app.test_client()
    own = client.get(f"/api/v1/escalations/{alpha_handoff['id']}", headers=alpha.auth("eng"))
    assert own.status_code == 200
    other = client.get(f"/api/v1/escalations/{beta_handoff['id']}", headers=alpha.auth("eng"))
    assert other.status_code == 404
    claimed = client.post(
        f"/api/v1/escalations/{alpha_handoff['id']}/claim", headers=alpha.auth("eng")
    )
    assert claimed.status_code == 200, claimed.get_json()
    queue = client.get("/api/v1/escalations?status=all", headers=beta.auth("eng")).get_json()
    assert {item["id"] for item in queue["items"]} == {beta_handoff["id"]}
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_a_password_sign_in_and_a_failed_one_for_an_unknown_email(
    rls_app, two_tenants, tag
) -> None:
    from models.entities import SecurityEvent

    client = rls_app.test_client()
    email = f"owner@alpha-{tag}.example"
    page = client.post("/login", data={"email": email, "password": "owner-password"})
    assert page.status_code in (302, 303), page.get_data(as_text=True)[:300]
    assert client.get("/api/v1/me").get_json()["email"] == email
    client.post("/login", data={"email": "nobody@nowhere.example", "password": "x"})
    with tenancy.system("security_event_without_account"):
        orphan = db.session.scalar(
            select(func.count()).where(
                SecurityEvent.account_id.is_(None), SecurityEvent.kind == "sign_in_failed"
            )
        )
    assert orphan >= 1


def test_isolation_is_enforced_with_three_roles(rls_app) -> None:
    assert tenancy.isolation_status() == tenancy.Isolation("enforced")


@pytest.mark.parametrize(
    ("runtime", "system", "reason"),
    [
        ("owner", "system", "the runtime role owns the tables"),
        ("runtime", None, "no system role"),
        ("admin", "system", "the runtime role bypasses row security"),
    ],
)
def test_isolation_is_off_and_says_why(roles, runtime, system, reason) -> None:
    urls = {
        "owner": roles.owner_url,
        "runtime": roles.runtime_url,
        "admin": roles.admin_url,
        "system": roles.system_url,
    }
    config = {**roles.config(), "SYSTEM_DATABASE_URL": urls[system] if system else ""}
    config["SQLALCHEMY_DATABASE_URI"] = urls[runtime]
    with running_app(app_config(urls[runtime], **config)):
        assert tenancy.isolation_status() == tenancy.Isolation("off", reason)
        _dispose()


def test_one_url_owning_the_tables_still_runs_everything(roles, two_tenants) -> None:
    """A trial: DATABASE_URL is the owner (no superuser), nothing else set. The system work
    runs through the owner's own policy; the tenant's work through the tenant policy."""
    alpha, beta, alpha_handoff, _b = two_tenants
    config = {"MIGRATION_DATABASE_URL": "", "SYSTEM_DATABASE_URL": ""}
    config["SQLALCHEMY_DATABASE_URI"] = roles.owner_url
    with running_app(app_config(roles.owner_url, **config)) as app:
        client = app.test_client()
        assert client.get("/api/v1/me", headers=alpha.auth("eng")).status_code == 200
        one = client.get(f"/api/v1/escalations/{alpha_handoff['id']}", headers=beta.auth("eng"))
        assert one.status_code == 404
        with tenancy.system("rollup"):
            assert db.session.scalar(select(func.count(Handoff.id))) >= 2
        _dispose()


def test_a_task_queued_without_its_account_is_resolved_through_the_system_role(
    rls_app, two_tenants
) -> None:
    from models.entities import OutboxEvent
    from workers import tenancy as task_tenancy
    from workers.names import DISPATCH_OUTBOX_EVENT

    _alpha, beta, _a, beta_handoff = two_tenants
    with tenancy.use_tenant(beta.account_id):
        event_id = db.session.scalar(
            select(OutboxEvent.id).where(OutboxEvent.handoff_id == beta_handoff["id"])
        )
        db.session.commit()
    found = task_tenancy.account_for(DISPATCH_OUTBOX_EVENT, (event_id,), {"emitted": False})
    assert found == beta.account_id
    carried = {"account_id": beta.account_id}
    assert task_tenancy.account_for(DISPATCH_OUTBOX_EVENT, (event_id,), carried) == found


# --------------------------------------------------------------------------- the system role

EXPECTED_SYSTEM_WORK = {
    "outbox_relay", "delivery_sweep", "handoff_steps", "rollup", "psa_poll", "shift_notices",
    "metrics", "health", "psa_key_rotation", "sign_in", "credential_lookup",
    "socket_credentials", "psa_callback", "create_account", "security_event_without_account",
    "task_from_before_tenancy", "demo_seed", "calendar_feed", "sso_domain", "sso_callback",
    "jit_exists", "psa_callback_upgrade",
}  # fmt: skip
SYSTEM_CALL = re.compile(r"""(?:tenancy|lookups)\.system(?:_connection)?\(\s*["']([a-z_]+)["']""")


def test_the_system_work_is_the_short_list_named_in_one_module() -> None:
    """Adding system work is a change made on purpose in two places: models/tenancy.py and
    here."""
    assert set(tenancy.SYSTEM_WORK) == EXPECTED_SYSTEM_WORK
    from workers.tenancy import SYSTEM_TASKS

    assert set(SYSTEM_TASKS.values()) <= EXPECTED_SYSTEM_WORK
    used = set()
    for path in [*ROOT.glob("models/**/*.py"), *ROOT.glob("web/**/*.py"),
                 *ROOT.glob("workers/**/*.py")]:  # fmt: skip
        used |= set(SYSTEM_CALL.findall(path.read_text()))
    assert used and used <= EXPECTED_SYSTEM_WORK, used - EXPECTED_SYSTEM_WORK
    with pytest.raises(tenancy.UnknownSystemWork), tenancy.system("anything_at_all"):
        pass


def test_system_work_through_its_own_role_sees_every_account(rls_app, two_tenants) -> None:
    alpha, beta, *_ = two_tenants
    with tenancy.system("rollup"):
        accounts = set(db.session.scalars(select(User.account_id)))
    assert {alpha.account_id, beta.account_id} <= accounts
    with tenancy.system("metrics"):
        who = db.session.execute(text("SELECT current_user")).scalar()
    assert who == rls_app.config["SYSTEM_DATABASE_URL"].split("//")[1].split("@")[0]
    try:
        db.session.execute(text("SELECT 1"))
    except DBAPIError:  # pragma: no cover
        pytest.fail("the session is usable after system work")
    db.session.rollback()
