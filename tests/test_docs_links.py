"""Every relative link in README.md and docs/**/*.md resolves: to a file (or folder) of the repository
and, where it names an anchor (#heading), to a heading of that file under GitHub's anchor rules; and
every page of docs/ is reachable from the README."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto: ...


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: markup and punctuation dropped, lowercase, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text)                         # inline HTML
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)                         # punctuation (unicode letters stay)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading of ``path``; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_anchor(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(path: Path):
    """(line number, target) of every relative link of ``path``, code spans and blocks left out."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            target = match.group(1)
            if not EXTERNAL.match(target):
                yield number, target


def broken(path: Path) -> list[str]:
    problems = []
    for number, target in links(path):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(REPO)}:{number}: {target}"
        if not resolved.exists():
            problems.append(f"{where}: no file {resolved}")
        elif REPO not in resolved.parents and resolved != REPO:
            problems.append(f"{where}: points outside the repository")
        elif anchor:
            if resolved.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not markdown")
            elif unquote(anchor) not in anchors(resolved):
                problems.append(f"{where}: no heading #{anchor} in {resolved.relative_to(REPO)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_resolves(page):
    assert broken(page) == []


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [REPO / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for _, target in links(page):
            file_part = target.partition("#")[0]
            resolved = (page.parent / unquote(file_part)).resolve() if file_part else page
            if resolved.suffix == ".md" and resolved.is_file() and (REPO / "docs") in resolved.parents:
                todo.append(resolved)
    assert sorted(str(p.relative_to(REPO)) for p in set(PAGES) - reached) == []


@pytest.mark.parametrize("heading, anchor", [
    ("Newton's linearisation and the batched engine", "newtons-linearisation-and-the-batched-engine"),
    ("Algorithm 1 (Picard) with every baseline", "algorithm-1-picard-with-every-baseline"),
    ("The whole 50,000-image stand-in through the workflow", "the-whole-50000-image-stand-in-through-the-workflow"),
    ("`fpscore scores` by hand", "fpscore-scores-by-hand"),
    ("Size: 32×32 — [faces](x.md)", "size-3232--faces"),
])
def test_anchors_follow_githubs_rules(heading, anchor):
    assert github_anchor(heading) == anchor


def test_a_broken_link_or_anchor_is_reported(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    (tmp_path / "a.md").write_text("# Title\n\n## Same\n\n## Same\n\n```\n[not a link](nowhere.md)\n```\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#same-1) [ok](#here) `[code](x.md)` [web](https://example.org/x#y)\n"
                    "# Here\n[missing](c.md) [bad anchor](a.md#same-2)\n")
    assert [p.split(": ", 2)[1:] for p in broken(page)] == [
        ["c.md", f"no file {tmp_path / 'c.md'}"], ["a.md#same-2", "no heading #same-2 in a.md"]]
