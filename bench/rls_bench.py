"""Measure 13: the cost of row-level security. Escalate throughput and claim latency on one
PostgreSQL database, side by side in one run, through three configurations:

- `enforced`: the three roles of docs/deploy.md (runtime role under the tenant policies,
  token look-ups through the system role);
- `owner`: one URL, the tables' owner (no BYPASSRLS: forced row security applies to it too,
  the system work through the owner's policy);
- `superuser`: one URL that bypasses row security (no policy is evaluated at all).

Each round runs every configuration in turn, a different one first each round (so load on
the machine hits them alike), each
through the app's own HTTP handling in this process (Flask's test client: token auth,
escalate, claim, commit and the outbox row), no Celery worker. Short on purpose.

    .venv/bin/python bench/rls_bench.py [--rounds 3] [--seconds 4] [--json]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import arg_parser, note, percentile, postgres_base_url, report  # noqa: E402

CONFIGS = ("enforced", "owner", "superuser")


def _apps(roles) -> dict[str, Any]:
    from devstack.inprocess import in_process_config, wired_app

    urls = {"enforced": roles.runtime_url, "owner": roles.owner_url, "superuser": roles.admin_url}
    apps = {}
    for name, url in urls.items():
        extra = roles.config() if name == "enforced" else {}
        config = in_process_config(url, **{**extra, "SQLALCHEMY_DATABASE_URI": url})
        if name != "enforced":
            config.update(MIGRATION_DATABASE_URL="", SYSTEM_DATABASE_URL="")
        apps[name] = wired_app(config)
    return apps


def _tenant(app, tag: str):
    from devstack.inprocess import make_tenant

    with app.app_context():
        return make_tenant(f"Bench {tag}")


def _escalate(client, tenant, title: str) -> dict:
    session = client.post(
        "/api/v1/sessions", json={"title": title, "snapshot": {"n": 1}}, headers=tenant.auth("tech")
    ).get_json()
    response = client.post(
        f"/api/v1/sessions/{session['id']}/escalate",
        json={"reason": "bench"},
        headers=tenant.auth("tech"),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _round(app, tenant, seconds: float) -> dict[str, Any]:
    """Escalations for `seconds` (each: create a session, escalate), then claim each."""
    client = app.test_client()
    with app.app_context():
        handoffs, started = [], time.perf_counter()
        while time.perf_counter() - started < seconds:
            handoffs.append(_escalate(client, tenant, f"bench {len(handoffs)}")["id"])
        elapsed = time.perf_counter() - started
        claims = []
        for handoff_id in handoffs:
            began = time.perf_counter()
            response = client.post(
                f"/api/v1/escalations/{handoff_id}/claim", headers=tenant.auth("eng")
            )
            claims.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.get_json()
    return {"escalations": len(handoffs), "seconds": elapsed, "claims_ms": claims}


def run(rounds: int, seconds: float) -> dict[str, Any]:
    from devstack.three_roles import migrate, three_role_database
    from models import db, tenancy

    base = postgres_base_url()
    if base is None:
        return {"skipped": "no PostgreSQL: set TEST_POSTGRES_URL or install postgresql"}
    with three_role_database(base, prefix="rlsbench") as roles:
        migrate(roles)
        apps = _apps(roles)
        tenants = {name: _tenant(app, name) for name, app in apps.items()}
        totals = {name: {"escalations": 0, "seconds": 0.0, "claims_ms": []} for name in CONFIGS}
        _round(apps["enforced"], tenants["enforced"], 0.5)  # warm up the first one too
        for number in range(rounds):
            # A different configuration goes first each round: none always gets a cold start.
            for name in CONFIGS[number % 3 :] + CONFIGS[: number % 3]:
                result = _round(apps[name], tenants[name], seconds)
                for key in ("escalations", "seconds"):
                    totals[name][key] += result[key]
                totals[name]["claims_ms"] += result["claims_ms"]
            note("round %d of %d done", number + 1, rounds)
        with apps["enforced"].app_context():
            isolation = tenancy.isolation_status().state
        for app in apps.values():
            with app.app_context():
                db.session.remove()
                tenancy.system_engine().dispose()
                db.engine.dispose()
    return _summary(totals, rounds, seconds, isolation)


def _summary(totals: dict, rounds: int, seconds: float, isolation: str) -> dict[str, Any]:
    configs = {}
    for name, total in totals.items():
        claims = sorted(total["claims_ms"])
        configs[name] = {
            "escalate_per_s": round(total["escalations"] / total["seconds"], 1),
            "claim_p50_ms": round(percentile(claims, 50) or 0, 2),
            "claim_p99_ms": round(percentile(claims, 99) or 0, 2),
            "claims": len(claims),
        }
    enforced, owner = configs["enforced"], configs["owner"]
    return {
        "database": "postgresql",
        "rounds": rounds,
        "seconds_per_round": seconds,
        "enforced_reports": isolation,
        "configs": configs,
        "throughput_ratio_vs_owner": round(enforced["escalate_per_s"] / owner["escalate_per_s"], 3),
        "claim_p99_ratio_vs_owner": round(enforced["claim_p99_ms"] / owner["claim_p99_ms"], 3),
    }


def main() -> None:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    report(run(args.rounds, args.seconds), args.json)


if __name__ == "__main__":
    main()
