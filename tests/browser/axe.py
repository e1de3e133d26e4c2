"""axe-core (bundled by axe-playwright-python) on a Playwright page: WCAG 2 A and AA rules only."""

from __future__ import annotations

from typing import Any

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(page: Any, context: Any = None) -> list[str]:
    """One line per violated rule and node ("rule: target — summary"); [] when the page passes."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(
        page,
        context=context,
        options={"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]},
    )
    found: list[str] = []
    for violation in results.response.get("violations", []):
        for node in violation.get("nodes", []):
            found.append(f"{violation['id']}: {node.get('target')} — {node.get('failureSummary', '')[:200]}")
    return found
