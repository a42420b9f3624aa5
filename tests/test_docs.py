"""The README is a front door (STYLE rule 30): short, linking every page under docs/, and every
relative link in it and in the docs lands on a file and, for ``#anchor`` links, on a heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS, ROOT / "benchmarks" / "RESULTS.md"]
MAX_README_LINES = 300

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def _prose_lines(path: Path) -> list[str]:
    """The lines of ``path`` outside fenced code blocks, with inline code spans blanked."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "``", line))
    return lines


def _links(path: Path) -> list[str]:
    found = []
    for line in _prose_lines(path):
        found += INLINE_LINK.findall(line)
        found += REFERENCE_LINK.findall(line)
    return found


def _is_relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) and \
        not target.startswith("//")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed (``-``
    and ``_`` kept), spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Every anchor ``path`` has: its headings' slugs (repeats numbered as GitHub does) and
    explicit ``<a id=...>`` / ``<a name=...>`` anchors."""
    anchors, seen = set(), {}
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        anchors.update(HTML_ANCHOR.findall(line))
        heading = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if heading:
            slug = _slug(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _resolve(page: Path, target: str) -> tuple[Path, str]:
    path, _, anchor = target.partition("#")
    return ((page.parent / path).resolve() if path else page), anchor


def test_readme_is_a_short_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines; at most {MAX_README_LINES}: move the detail into a "
        "page under docs/ and link it")


def test_readme_keeps_the_two_commands():
    text = README.read_text()
    assert re.search(r"^make demo\b", text, re.MULTILINE)
    assert re.search(r"^make test\b", text, re.MULTILINE)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {_resolve(README, t)[0] for t in _links(README) if _is_relative(t)}
    missing = [p.relative_to(ROOT).as_posix() for p in DOCS if p.resolve() not in linked]
    assert DOCS and missing == [], f"pages under docs/ that README.md does not link: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_lands(page):
    broken = []
    for target in _links(page):
        if not _is_relative(target):
            continue
        path, anchor = _resolve(page, target)
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading '#{anchor}' in {path.relative_to(ROOT)}")
    assert broken == [], f"{page.relative_to(ROOT)}: broken links: {broken}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_dated_figures_live_in_the_results_file(page):
    """A date in the README or a doc page is a figure that goes stale there: dated figures
    live in benchmarks/RESULTS.md, which the pages link to."""
    dates = re.findall(r"\b20\d\d-\d\d-\d\d\b", page.read_text())
    assert dates == [], f"{page.relative_to(ROOT)} names dates {dates}: link benchmarks/RESULTS.md"


def test_the_link_checker_reads_links_and_headings_as_github_does(tmp_path):
    """The checker itself: headings' slugs (repeats numbered), links outside code only."""
    (tmp_path / "a.md").write_text("# Cache and --jobs: `python -m x.y_z`\n\n"
                                   "## Repeat\n## Repeat\n```\n# not a heading\n```\n")
    assert _anchors(tmp_path / "a.md") == {"cache-and---jobs-python--m-xy_z", "repeat",
                                           "repeat-1"}
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#repeat-1) `[code](gone.md)` [web](https://x.org)\n"
                    "```\n[fenced](gone.md)\n```\n![img](a.md)\n")
    assert _links(page) == ["a.md#repeat-1", "https://x.org", "a.md"]
