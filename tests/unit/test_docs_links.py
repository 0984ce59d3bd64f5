"""Every relative link in the README and docs/ resolves to a file in the repository, its #anchor to a
heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([*REPO.glob("*.md"), *REPO.glob("docs/**/*.md")])
FENCED_CODE = re.compile(r"^```.*?^```", flags=re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the text may wrap onto the next line.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", flags=re.MULTILINE)


def prose(path: Path) -> str:
    return INLINE_CODE.sub("", FENCED_CODE.sub("", path.read_text(encoding="utf-8")))


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCED_CODE.sub("", path.read_text(encoding="utf-8"))):
        anchor = github_anchor(heading.replace("`", ""))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    return result


def relative_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path)) if not re.match(r"[a-z]+:", target)]


def test_the_documents_are_found() -> None:
    names = {path.relative_to(REPO).as_posix() for path in DOCUMENTS}
    assert {"README.md", "docs/pipeline.md", "docs/record.md", "docs/benchmarks.md"} <= names


def test_anchor_rule_matches_github() -> None:
    assert github_anchor("The endpoint: make bench") == "the-endpoint-make-bench"
    assert github_anchor("What it took, and what is still weak") == "what-it-took-and-what-is-still-weak"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(REPO).as_posix())
def test_relative_links_resolve(document: Path) -> None:
    broken = []
    for target in relative_links(document):
        file_part, _, anchor = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        if not linked.is_relative_to(REPO):
            broken.append(f"{target}: outside the repository")
        elif not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(REPO)}")
    assert not broken, f"{document.relative_to(REPO)}: " + "; ".join(broken)


def test_nothing_refers_to_the_design_notes_outside_the_repository() -> None:
    """The README, docs and code stand on their own: no pointers to the team's shared folder."""
    outside = re.compile(r"\.\./shared|/work/|\bshared/(DESIGN\.md|kaggle-sample)")
    sources = [*DOCUMENTS, *REPO.glob("*.toml"), *REPO.glob("Makefile")]
    for folder in ("functions", "training", "describer", "tests", "statemachine", "events"):
        sources += [path for path in (REPO / folder).rglob("*") if path.suffix in {".py", ".json", ".md"}]
    referring = [
        path.relative_to(REPO).as_posix()
        for path in sources
        if path != Path(__file__) and outside.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not referring
