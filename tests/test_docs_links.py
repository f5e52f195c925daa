"""The documentation a newcomer reads (README.md, docs/*.md, docs/results/**/README.md): every relative link
points at a file or folder that exists in the checkout."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "docs" / "results").rglob("README.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[str]:
    """Targets of the page's markdown links and images that are neither URLs nor anchors within the page."""
    return [target for target in LINK.findall(page.read_text())
            if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")]


def test_the_pages_are_found():
    assert len(PAGES) > 20 and REPO / "docs" / "folding_study.md" in PAGES


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    missing = [target for target in relative_links(page) if not (page.parent / target.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"
