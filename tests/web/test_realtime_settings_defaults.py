"""The live path's settings have one default each (adapters.presence.PRESENCE_DEFAULTS,
adapters.broadcast.DEFAULT_PUBLISH_TIMEOUT_SECONDS, web.config's credential check); the
web's configuration, the worker's broker settings, the presence store and the settings
tables of docs/realtime.md and docs/deploy.md say the values written out here by hand."""

from __future__ import annotations

import re
from pathlib import Path

from adapters.presence import presence_of
from web.config import ROOT, from_env
from workers import settings as celery_settings

DOCS = Path(ROOT) / "docs"
WRITTEN_OUT = {
    "PRESENCE_TTL_SECONDS": 30.0,
    "PRESENCE_HEARTBEAT_SECONDS": 10.0,
    "CREDENTIAL_CHECK_SECONDS": 2.0,
    "PUBLISH_TIMEOUT_SECONDS": 0.5,
}


def test_an_unset_environment_gets_the_documented_defaults():
    config = from_env({"SECRET_KEY": "x" * 32})
    assert {key: config[key] for key in WRITTEN_OUT} == WRITTEN_OUT


def test_a_value_in_the_environment_wins():
    config = from_env({"SECRET_KEY": "x" * 32, "PRESENCE_TTL_SECONDS": "3"})
    assert (config["PRESENCE_TTL_SECONDS"], config["PRESENCE_HEARTBEAT_SECONDS"]) == (3.0, 10.0)


def test_a_config_without_the_keys_reads_the_same_defaults():
    broker = celery_settings.settings({"REDIS_URL": "redis://127.0.0.1:1/0"})
    per_try = 0.5 / celery_settings.TIMEOUTS_PER_STALLED_PUBLISH
    assert broker["broker_transport_options"]["socket_timeout"] == per_try
    # Made, not connected: nothing listens on port 1.
    presence = presence_of({}, {"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert presence.ttl_seconds == 30.0


def _table(doc: str) -> dict[str, str]:
    """`| `NAME` | `value` | ...` and `| `A`, `B` | 1, 2 | ...` rows of a doc's tables."""
    rows: dict[str, str] = {}
    for names, values in re.findall(r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \| ([^|]+) \|", doc, re.M):
        keys = re.findall(r"`([A-Z_]+)`", names)
        found = [v.strip().strip("`") for v in values.split(",")]
        if len(found) == len(keys):
            rows.update(zip(keys, found, strict=True))
    return rows


def test_the_docs_tables_say_the_defaults():
    for doc in ("realtime.md", "deploy.md"):
        table = _table((DOCS / doc).read_text())
        for key, value in WRITTEN_OUT.items():
            if key in table:
                assert float(table[key]) == value, (doc, key, table[key])
    assert {"PRESENCE_TTL_SECONDS", "PRESENCE_HEARTBEAT_SECONDS"} <= set(
        _table((DOCS / "realtime.md").read_text())
    )
    assert "PUBLISH_TIMEOUT_SECONDS" in _table((DOCS / "deploy.md").read_text())
