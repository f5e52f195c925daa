"""The documentation a newcomer reads (README.md, docs/*.md, docs/results/**/README.md): every relative link
points at a file or folder that exists in the checkout, and every link to a section (``page.md#section``,
``#section``) names a heading or an ``<a id=...>`` of that page, slugged as GitHub slugs headings."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "docs" / "results").rglob("README.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.M)
EXPLICIT_ANCHOR = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")
CODE_BLOCK = re.compile(r"```.*?```", re.S)
LINK_TEXT = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def relative_links(page: Path) -> list[str]:
    """Targets of the page's markdown links and images that are not URLs (anchors within the page included)."""
    return [target for target in LINK.findall(page.read_text()) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def heading_slug(heading: str) -> str:
    """GitHub's anchor for a heading: link markup and code ticks dropped, lower case, letters, digits, '-', '_'
    and spaces kept (other punctuation dropped), spaces turned into '-'."""
    text = LINK_TEXT.sub(r"\1", heading).replace("`", "").strip().lower()
    return "".join(char for char in text if char.isalnum() or char in "-_ ").replace(" ", "-")


def section_anchors(page: Path) -> set[str]:
    """The anchors a link into the page may name; a repeated heading gets -1, -2, ... as on GitHub."""
    text = page.read_text()
    anchors, seen = set(EXPLICIT_ANCHOR.findall(text)), {}
    for heading in HEADING.findall(CODE_BLOCK.sub("", text)):
        slug = heading_slug(heading)
        anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_the_pages_are_found():
    assert len(PAGES) > 20 and REPO / "docs" / "folding_study.md" in PAGES


def test_heading_slugs_follow_github():
    assert heading_slug("5. What to expect") == "5-what-to-expect"
    assert heading_slug("PLUMED's own cost: the wheel's kernel (2026-12-07)") == "plumeds-own-cost-the-wheels-kernel-2026-12-07"
    assert heading_slug("The `default` model, [card](x.md)") == "the-default-model-card"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    missing = [target for target in relative_links(page)
               if not target.startswith("#") and not (page.parent / target.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_section_link_names_a_heading(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        linked = page.parent / path if path else page
        if anchor and linked.suffix == ".md" and linked.is_file() and anchor not in section_anchors(linked):
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)} links to sections that do not exist: {broken}"
