"""The README is a short front page, and every relative link in it and in docs/ leads somewhere.

A link is `[text](target)` or `![alt](target)` outside code; http(s) and mailto targets are not followed.
A `#anchor` must name a heading of the target file, slugged as GitHub does: lowercase, punctuation
dropped, spaces to dashes, a repeated heading numbered -1, -2, ...
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks, with inline code spans removed."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield re.sub(r"`[^`]*`", "", line)


def slug(heading: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> Set[str]:
    seen: dict = {}
    found = set()
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> List[Tuple[str, str]]:
    out = []
    for line in prose_lines(path.read_text()):
        out += [(path.name, target) for target in LINK.findall(line)]
    return out


def test_slug_follows_github():
    assert slug("Large raw frames over DDS") == "large-raw-frames-over-dds"
    assert slug("What was and was not run here") == "what-was-and-was-not-run-here"
    assert slug("The README's examples, as written") == "the-readmes-examples-as-written"
    assert slug("`hypood eval` and `--roi`") == "hypood-eval-and---roi"


def test_link_scanner_skips_code():
    page = "[a](x.md) `[b](y.md)`\n```\n[c](z.md)\n```\n![d](e.png \"title\")\n"
    assert [t for line in prose_lines(page) for t in LINK.findall(line)] == ["x.md", "e.png"]


def test_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move sections into docs/"


def test_the_readme_links_every_docs_page():
    targets = {t.split("#")[0] for _, t in links(REPO / "README.md")}
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"docs/{page.name}" in targets, f"README.md does not link docs/{page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    broken = []
    for _, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)
