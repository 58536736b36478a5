#!/usr/bin/env python3
"""The checks mdBook does not make (`make docs`, part of `make test`).

1. Links. Every relative link in README.md and docs/src/**/*.md resolves: the
   file exists, and a `#anchor` is one that mdBook (or GitHub, for the README)
   generates from a heading of the target page: the heading's text, lowercase,
   spaces as '-', every character but letters, digits, '-' and '_' dropped, and
   '-1', '-2', ... after a repeated one. A page of the book links only inside
   the book (docs/src), so the built book has no dead link.
2. The book. Every page under docs/src is in SUMMARY.md or included
   (`{{#include file}}`) by a page that is; every include exists.
3. Citations. Code and docs cite sections as `docs "Replay protection"` (a
   heading of the book) or `README "Make targets"` (a heading of README.md); a
   list `docs "Paths", "Limits"` cites each. Every citation in the repository's code,
   configs, tests, tools and docs must name an existing heading.
4. The layout. The `src/` listing under "Layout" in docs/src/architecture.md
   names every file under src/, and nothing else.

Standard library only. Exit status 1 on any problem, each printed with its
file and line.
"""
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "docs" / "src"
README = REPO / "README.md"

# Where citations are looked for, and what is skipped there.
CITING = ["src", "tests", "tools", "python", "envoy", "deploy", "compose", "docs", "examples", "bench", "fuzz", ".ci",
          "Makefile", "README.md", "Dockerfile", "docker-compose.yml", "Cargo.toml"]
SKIP_DIRS = {"target", "book", "corpus", "artifacts", "__pycache__", ".pytest_cache", "data", "node_modules"}
TEXT_SUFFIXES = {".rs", ".py", ".md", ".toml", ".yaml", ".yml", ".json", ".sh", ".txt", ".cfg", ".ini", ""}

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INCLUDE = re.compile(r"\{\{#include\s+([^}\s:]+)[^}]*\}\}")
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# `docs "Paths"`, `README "Make targets"`, `README ("Make targets")`,
# `README's "Make targets"`, each maybe followed by `, "Limits"`...
CITATION = re.compile(r"\b(README|docs)(?:'s)?\s+\(?\"([^\"]{1,160})\"((?:\s*,\s*\"[^\"]{1,160}\")*)")
MORE = re.compile(r"\"([^\"]{1,160})\"")
# A comment's leading marker, so a citation may run on to the next comment line.
COMMENT_LEAD = re.compile(r"^\s*(?://[/!]?|#|\*|--)?\s?")

problems: list[str] = []


def problem(path: Path, line: int, message: str) -> None:
    problems.append(f"{path.relative_to(REPO)}:{line}: {message}")


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if m:
            if fenced is None:
                fenced = m.group(1)
            elif m.group(1) == fenced:
                fenced = None
            continue
        if fenced is None:
            yield n, line


def heading_text(raw: str) -> str:
    """A heading as it reads: links to their text, code spans to their code."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), text)
    return text.replace("**", "").strip()


def anchor(text: str) -> str:
    """mdBook's `normalize_id` (utils/mod.rs, 0.4.x) of a heading's text."""
    out = []
    for ch in re.sub(r"<[^>]*>", "", text).strip():
        if ch.isalnum() or ch in "_-":
            out.append(ch.lower() if ch.isascii() else ch)
        elif ch.isspace():
            out.append("-")
    return "".join(out)


def expanded(path: Path) -> str:
    """A page's text with its `{{#include}}`s in place (as mdBook renders it)."""
    text = path.read_text(encoding="utf-8")

    def include(m: re.Match) -> str:
        target = (path.parent / m.group(1)).resolve()
        return target.read_text(encoding="utf-8") if target.is_file() else ""
    return INCLUDE.sub(include, text)


class Page:
    def __init__(self, path: Path):
        self.path = path
        self.text = expanded(path)
        self.headings: list[str] = []
        self.anchors: set[str] = set()
        seen: dict[str, int] = {}
        for _, line in prose_lines(self.text):
            m = HEADING.match(line)
            if not m:
                continue
            text = heading_text(m.group(2))
            self.headings.append(text)
            base = anchor(text)
            n = seen.get(base, 0)
            seen[base] = n + 1
            self.anchors.add(base if n == 0 else f"{base}-{n}")


def markdown_files() -> list[Path]:
    return [README] + sorted(p for p in BOOK.rglob("*.md"))


def check_links(pages: dict[Path, Page]) -> int:
    checked = 0
    for path in markdown_files():
        own = path.read_text(encoding="utf-8")
        for n, line in prose_lines(own):
            line = CODE_SPAN.sub("", line)
            targets = [m.group(1) for m in LINK.finditer(line)]
            ref = REF_DEF.match(line)
            if ref:
                targets.append(ref.group(1))
            for target in targets:
                checked += 1
                check_link(pages, path, n, target)
    return checked


def check_link(pages: dict[Path, Page], path: Path, n: int, target: str) -> None:
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
        return  # https:, mailto:, ...: not checked here
    file_part, _, frag = target.partition("#")
    dest = (path.parent / file_part).resolve() if file_part else path
    if file_part:
        if not dest.exists():
            problem(path, n, f"broken link {target!r}: {file_part} does not exist")
            return
        if path.is_relative_to(BOOK) and not dest.is_relative_to(BOOK):
            problem(path, n, f"link {target!r} leaves the book (docs/src): the built book would not have it")
            return
    if frag:
        page = pages.get(dest)
        if page is None:
            problem(path, n, f"link {target!r}: an anchor into a file that is not a markdown page")
        elif frag not in page.anchors:
            problem(path, n, f"broken anchor {target!r}: no heading of {dest.relative_to(REPO)} makes #{frag}")


def check_book() -> None:
    summary = BOOK / "SUMMARY.md"
    listed: set[Path] = set()
    for n, line in prose_lines(summary.read_text(encoding="utf-8")):
        for m in LINK.finditer(line):
            target = (BOOK / m.group(1)).resolve()
            if not target.is_file():
                problem(summary, n, f"SUMMARY.md lists {m.group(1)}, which does not exist")
            listed.add(target)
    included: set[Path] = set()
    for path in BOOK.rglob("*.md"):
        for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            for m in INCLUDE.finditer(line):
                target = (path.parent / m.group(1)).resolve()
                if not target.is_file():
                    problem(path, n, f"{{{{#include {m.group(1)}}}}}: no such file")
                included.add(target)
    for path in sorted(BOOK.rglob("*.md")):
        if path != summary and path.resolve() not in listed | included:
            problem(path, 1, "a page neither in SUMMARY.md nor included by one: mdBook would not render it")


def cited_files() -> list[Path]:
    files = []
    for name in CITING:
        root = REPO / name
        if root.is_file():
            files.append(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
            for f in filenames:
                p = Path(dirpath) / f
                if p.suffix in TEXT_SUFFIXES or f == "Makefile":
                    files.append(p)
    return files


def check_citations(pages: dict[Path, Page]) -> int:
    book = {h for p, page in pages.items() if p != README for h in page.headings}
    readme = set(pages[README].headings)
    checked = 0
    for path in cited_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if "README" not in text and "docs" not in text:
            continue
        # Comment lines joined, so a citation may run on to the next line.
        lines = text.split("\n")
        starts, parts, at = [], [], 0
        for line in lines:
            part = COMMENT_LEAD.sub("", line, count=1) if parts else line
            starts.append(at)
            parts.append(part)
            at += len(part) + 1
        joined = " ".join(parts)
        for m in CITATION.finditer(joined):
            line = next(i for i in range(len(starts) - 1, -1, -1) if starts[i] <= m.start()) + 1
            kind = m.group(1)
            names = [m.group(2)] + MORE.findall(m.group(3) or "")
            for name in names:
                checked += 1
                name = " ".join(name.split())
                headings = readme if kind == "README" else book
                if name in headings or name.replace("`", "") in headings:
                    continue
                where = "README.md" if kind == "README" else "docs/src"
                hint = ""
                if kind == "README" and name in book:
                    hint = f" (it is in the book: cite it as docs \"{name}\")"
                problem(path, line, f'{kind} "{name}": no such heading in {where}{hint}')
    return checked


def check_layout() -> int:
    page = BOOK / "architecture.md"
    lines = page.read_text(encoding="utf-8").split("\n")
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "## Layout")
        begin = next(i for i in range(start, len(lines)) if lines[i].startswith("```"))
        end = next(i for i in range(begin + 1, len(lines)) if lines[i].startswith("```"))
    except StopIteration:
        problem(page, 1, "no '## Layout' section with a code block listing src/")
        return 0
    listed: dict[str, int] = {}
    stack: list[tuple[int, str]] = []
    for i in range(begin + 1, end):
        line = lines[i]
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        name = line.split()[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        # Several levels may be named at once (`bin/combo-webhook.rs`).
        full = parent + name
        if name.endswith("/"):
            stack.append((indent, full))
        else:
            listed[full] = i + 1
    actual = {str(p.relative_to(REPO)) for p in (REPO / "src").rglob("*") if p.is_file()}
    for f in sorted(actual - set(listed)):
        problem(page, begin + 1, f"the Layout listing lacks {f}")
    for f in sorted(set(listed) - actual):
        problem(page, listed[f], f"the Layout listing names {f}, which does not exist")
    return len(listed)


def main() -> int:
    pages = {p.resolve(): Page(p) for p in markdown_files()}
    links = check_links(pages)
    check_book()
    citations = check_citations(pages)
    files = check_layout()
    for p in problems:
        print(p)
    anchors = sum(len(p.anchors) for p in pages.values())
    print(f"docs_check: {len(pages)} pages, {anchors} anchors, {links} links, {citations} citations, "
          f"{files} files in the layout; {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
