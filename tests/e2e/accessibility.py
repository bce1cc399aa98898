"""axe-core's check of a page in the browser tests."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from devstack.net import REPO_ROOT

AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations on the page as it is now (axe is injected
    over the DevTools protocol, which a Content-Security-Policy does not block)."""
    page.evaluate(AXE.read_text())
    results = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results
        if v["impact"] in ("serious", "critical")
    ]
