"""The connector interface is all the domain knows of a PSA: the PSAs are found from
adapters/psa's modules, the API's schemas and the /settings form are built from their
specs, and a PSA the domain has never heard of is connected, answered and tested through
its spec alone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from adapters.psa import default_connector, discover
from models import db
from models.entities import PsaConnection, User
from models.psa import connection as connections
from models.psa.base import (
    ConnectorField,
    Connectors,
    ConnectorSpec,
    PsaCredentials,
    PsaMember,
    PsaNote,
)
from models.psa.settings import PsaSettings
from web.schemas import PsaConnectionInputSchema, PsaConnectionSchema


class _Halo:
    """A stand-in third PSA: what a new module under adapters/psa would declare."""

    kind = "halopsa"

    def __init__(self, credentials: PsaCredentials, timeout: float) -> None:
        self.credentials = credentials

    def check(self) -> str:
        return f"Connected to HaloPSA tenant {self.credentials.get('tenant')}."

    def create_note(self, ticket_id: str, text: str) -> PsaNote:
        return PsaNote("1", ticket_id, text, datetime(2026, 3, 9, 14, 0), None)

    def list_notes(self, ticket_id: str, since: datetime | None = None) -> list[PsaNote]:
        return []

    def get_member(self, member_id: str) -> PsaMember | None:
        return None

    def register_callback(self, url: str, description: str) -> str:
        return "cb-1"

    def delete_callback(self, callback_id: str) -> None:
        return None

    def ticket_url(self, ticket_id: str) -> str:
        return ""


HALO = ConnectorSpec(
    kind="halopsa",
    label="HaloPSA",
    fields=(
        ConnectorField("resource_url", "Resource server", 300, input_type="url"),
        ConnectorField("tenant", "Tenant", 100),
        ConnectorField("client_secret", "Client secret", 200, secret=True),
    ),
    callbacks=False,
    answered=("resource_url", "tenant"),
    build=lambda credentials, timeout: _Halo(credentials, timeout),
    ticket_url=lambda values, ticket: f"{values['resource_url']}/tickets?id={ticket}",
    address="resource_url",
)


def test_the_psas_are_found_from_their_modules_and_build_the_schemas():
    assert [spec.kind for spec in discover()] == ["connectwise", "autotask"]
    fields = set(PsaConnectionInputSchema().fields)
    for spec in default_connector.specs.values():
        assert {f.name for f in spec.fields} <= fields
        assert set(spec.answered) <= set(PsaConnectionSchema().fields)
    assert PsaConnectionInputSchema().fields["kind"].validate.choices == [
        "connectwise",
        "autotask",
    ]


def test_a_third_psa_needs_nothing_but_its_spec(app, tenant):
    settings = PsaSettings.from_config(app.config, Connectors([*discover(), HALO]))
    admin = db.session.get(User, tenant.users["admin"])
    fields = {"kind": "halopsa", "resource_url": "https://halo.example/api",
              "tenant": "acme", "client_secret": "s3cret"}  # fmt: skip
    assert connections.test(admin, fields, settings) == (True, "Connected to HaloPSA tenant acme.")
    saved = connections.save(admin, fields, settings)
    assert connections.view(saved, settings) == {
        "kind": "halopsa",
        "resource_url": "https://halo.example/api",
        "tenant": "acme",
        "status": "connected",
        "message": None,
        "callback_url": None,
    }
    row = db.session.scalar(select(PsaConnection))
    assert "s3cret" not in row.secrets and "s3cret" not in row.public_settings
    assert connections.credentials(row, settings).get("client_secret") == "s3cret"
    page = connections.for_session(tenant.account_id, "42", settings.connector)
    assert (page.name, page.ticket_url) == ("HaloPSA", "https://halo.example/api/tickets?id=42")
    missing = connections.test(admin, {**fields, "tenant": ""}, settings)
    assert missing == (False, "Missing: Tenant.")


def test_a_connectwise_connection_saved_before_the_spec_columns_still_works(
    client, tenant, fake_cw
):
    """Rows from before migration 9b4e2c7a1f05 have no public_settings: their ConnectWise
    columns are read instead."""
    admin = tenant.auth("admin")
    saved = client.put("/api/v1/account/psa", json=fake_cw.connection_body(), headers=admin)
    assert saved.status_code == 200
    row = db.session.scalar(select(PsaConnection))
    row.public_settings = None
    db.session.commit()
    again = client.get("/api/v1/account/psa", headers=admin).get_json()
    assert again == saved.get_json()
    tested = client.post("/api/v1/account/psa/test", headers=admin).get_json()
    assert tested["ok"] is True, tested
