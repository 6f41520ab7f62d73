"""Tables in a project's documentation: reStructuredText and Markdown, read without docutils.

A project's human-readable support table (Nova's
doc/source/reference/libvirt-distro-support-matrix.rst) drifts from the code
and from the facts unless something reads it. Only the table shapes such
documents use are understood: rST `list-table` directives, grid and simple
tables, and Markdown pipe tables. Every row keeps the line it starts on, so a
report can link to it.
"""

from __future__ import annotations

import re

from bot.core.records import Record


class TableError(ValueError):
    """A table that cannot be read; the message starts with `line N:`."""


class Row(Record):
    cells: list[str]
    line: int  # 1-based line of the row's first line


class Table(Record):
    title: str
    header: list[str]
    rows: list[Row]
    line: int  # 1-based line where the table starts


_LIST_TABLE = re.compile(r"^(\s*)\.\.\s+list-table::\s*(.*)$")
_OPTION = re.compile(r"^\s*:([A-Za-z][\w-]*):\s*(.*)$")
_CELL = re.compile(r"^(\s*)-(?:\s+(.*))?$")
_GRID_BORDER = re.compile(r"^\s*\+(?:[-=]+\+)+\s*$")
_SIMPLE_BORDER = re.compile(r"^\s*=+(?:\s+=+)+\s*$")
_MD_SEP = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$")


def clean(cell: str) -> str:
    """The text of a cell without inline markup: ``code``, **bold**, *emphasis*, `links <...>`_."""
    text = cell.strip()
    text = re.sub(r"`([^`<]*?)\s*<[^>]*>`_+", r"\1", text)
    text = text.replace("``", "").replace("**", "").replace("\\", "")
    text = re.sub(r"(?<!\w)[*_`]+|[*_`]+(?!\w)", "", text)
    return " ".join(text.split())


def is_bold(cell: str) -> bool:
    text = cell.strip()
    return len(text) > 4 and text.startswith("**") and text.endswith("**")


def parse(text: str, path: str = "") -> list[Table]:
    """Every table in `text`; Markdown for .md/.markdown files, reStructuredText otherwise."""
    lines = text.splitlines()
    if path.lower().endswith((".md", ".markdown")):
        return _markdown(lines)
    return sorted(_list_tables(lines) + _grid_tables(lines) + _simple_tables(lines), key=lambda t: t.line)


# ----------------------------------------------------------- list-table ---

def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _list_tables(lines: list[str]) -> list[Table]:
    out: list[Table] = []
    i = 0
    while i < len(lines):
        m = _LIST_TABLE.match(lines[i])
        if not m:
            i += 1
            continue
        start, base, title = i + 1, len(m.group(1)), m.group(2).strip()
        header_rows = 1
        i += 1
        body: list[tuple[int, str]] = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
            body.append((i + 1, lines[i]))
            i += 1
        rows: list[Row] = []
        cell_indent: int | None = None
        for num, line in body:
            if not line.strip():
                continue
            opt = _OPTION.match(line)
            if opt and not rows:
                if opt.group(1) == "header-rows":
                    try:
                        header_rows = int(opt.group(2))
                    except ValueError:
                        raise TableError(f"line {num}: :header-rows: is not a number") from None
                continue
            stripped = line.strip()
            if stripped.startswith("* -") or stripped == "*":
                rows.append(Row([stripped[3:].strip()] if stripped.startswith("* -") else [], num))
                cell_indent = _indent(line) + 2
                continue
            if not rows:
                raise TableError(f"line {num}: list-table content must be a bullet list of rows ('* - cell')")
            cm = _CELL.match(line)
            if cm and _indent(line) == cell_indent:
                rows[-1].cells.append((cm.group(2) or "").strip())
            elif rows[-1].cells:
                rows[-1].cells[-1] = (rows[-1].cells[-1] + " " + stripped).strip()
            else:
                raise TableError(f"line {num}: a row of the list-table has no cell")
        if not rows:
            raise TableError(f"line {start}: the list-table has no rows")
        width = len(rows[0].cells)
        for r in rows:
            if len(r.cells) != width:
                raise TableError(f"line {r.line}: this row has {len(r.cells)} cells, the first row {width}")
        n = max(1, header_rows) if len(rows) > 1 else 0
        header = [c for r in rows[:n] for c in r.cells][:width] if n else []
        out.append(Table(title, header, rows[n:], start))
    return out


# ------------------------------------------------------------ grid tables ---

def _grid_tables(lines: list[str]) -> list[Table]:
    out: list[Table] = []
    i = 0
    while i < len(lines):
        if not _GRID_BORDER.match(lines[i]):
            i += 1
            continue
        start = i
        border = lines[i].rstrip()
        cols = [k for k, ch in enumerate(border) if ch == "+"]
        groups: list[tuple[int, list[str]]] = []  # rows as (line, physical lines)
        current: list[str] = []
        first = i + 1
        header_end = None
        i += 1
        while i < len(lines) and lines[i].strip().startswith(("|", "+")):
            line = lines[i].rstrip()
            if _GRID_BORDER.match(line):
                if current:
                    groups.append((first, current))
                if "=" in line and header_end is None:
                    header_end = len(groups)
                current, first = [], i + 2
            else:
                current.append(line)
            i += 1
        rows = []
        for num, phys in groups:
            cells = []
            for a, b in zip(cols, cols[1:]):
                parts = [p[a + 1:b].strip() for p in phys if len(p) > a]
                cells.append(" ".join(x for x in parts if x))
            rows.append(Row(cells, num))
        if not rows:
            continue
        n = header_end if header_end else 1
        header = rows[0].cells if n else []
        out.append(Table("", header, rows[n:], start + 1))
    return out


# ---------------------------------------------------------- simple tables ---

def _simple_tables(lines: list[str]) -> list[Table]:
    out: list[Table] = []
    i = 0
    while i < len(lines):
        if not _SIMPLE_BORDER.match(lines[i]):
            i += 1
            continue
        start = i
        border = lines[i]
        spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]
        borders = [i]
        body: list[tuple[int, str]] = []
        i += 1
        while i < len(lines):
            line = lines[i]
            i += 1
            if _SIMPLE_BORDER.match(line):
                borders.append(i - 1)
                if i >= len(lines) or not lines[i].strip():  # a border before a blank line ends the table
                    break
                continue
            body.append((i, line))
        if len(borders) < 2:  # never closed: not a table
            i = start + 1
            continue
        header_until = borders[1] + 1 if len(borders) >= 3 else None
        rows: list[Row] = []
        header: list[str] = []
        for num, line in body:
            if not line.strip():
                continue
            cells = []
            for k, (a, _b) in enumerate(spans):
                end = spans[k + 1][0] if k + 1 < len(spans) else len(line)
                cells.append(line[a:end].strip() if len(line) > a else "")
            if header_until is not None and num <= header_until:
                header = [(h + " " + c).strip() for h, c in zip(header, cells)] if header else cells
            elif not cells[0] and rows:  # a continuation line: the first column is blank
                rows[-1].cells = [(p + " " + c).strip() for p, c in zip(rows[-1].cells, cells)]
            else:
                rows.append(Row(cells, num))
        if header_until is None and rows:
            header, rows = rows[0].cells, rows[1:]
        out.append(Table("", header, rows, start + 1))
    return out


# -------------------------------------------------------------- Markdown ---

def _md_cells(line: str) -> list[str]:
    text = line.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", text)]


def _markdown(lines: list[str]) -> list[Table]:
    out: list[Table] = []
    i = 0
    while i + 1 < len(lines):
        if "|" in lines[i] and "|" in lines[i + 1] and _MD_SEP.match(lines[i + 1]):
            header = _md_cells(lines[i])
            start = i + 1
            i += 2
            rows: list[Row] = []
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                cells = _md_cells(lines[i])
                cells = (cells + [""] * len(header))[:len(header)]
                rows.append(Row(cells, i + 1))
                i += 1
            out.append(Table("", header, rows, start))
            continue
        i += 1
    return out
