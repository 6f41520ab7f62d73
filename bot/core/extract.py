"""Module-level version constants, read with `ast` from source text, never imported or run.

A 14,000-line module costs ~0.4 s to `ast.parse` whole on a small machine, so
the fast path finds candidate top-level assignments with a line scan and
parses just those statements; any statement that does not parse on its own
sends the whole file through `ast.parse` to get the exact answer.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

from bot.core.matrix import norm_arch
from bot.core.version import Version
from bot.core.records import Record, factory
from bot.errors import MinbumpError

MAX_CONSTANTS = 2000  # version-like top-level assignments in one file (Nova's driver.py has about 40)
MAX_SOURCE = 4 * 1024 * 1024  # the most any caller may allow; the edge passes its own limit in (default 2 MiB)

_CANDIDATE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]*(?::[^=\n]*)?=(?!=)")
# Substrings every name default_filter keeps contains: found with str.find, which on a
# 500 kB module is ~50x faster than a multi-line regex trying every line.
DEFAULT_LITERALS = ("MIN_", "VERSION", "BAD_", "DENY")
_TRIPLE = re.compile(r'"""|\'\'\'')


class UnreadableSource(MinbumpError):
    """A watched file the parser cannot take (an expression nested too deeply): an input error, exit 2.

    `file` and `line` say where, for a report that names them.
    """

    def __init__(self, file: str, line: int, why: str) -> None:
        super().__init__(f"{file}:{line}: cannot read: {why}")
        self.file, self.line, self.why = file, line, why


_TOO_DEEP = (RecursionError, MemoryError)  # what `ast` raises on `1+1+...` x 3,000 or 100,000 unary minus


def _too_deep(path: str, line: int) -> UnreadableSource:
    return UnreadableSource(path, line, "an expression is nested too deeply for Python's parser")


def _deep_line(text: str, first_line: int = 1) -> int:
    """The line of the first top-level statement in `text` that `ast` cannot take (first_line if none)."""
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if _toplevel(ln)] or [0]
    for a, b in zip(starts, starts[1:] + [len(lines)]):
        try:
            ast.parse("\n".join(lines[a:b]))
        except _TOO_DEEP:
            return first_line + a
        except (SyntaxError, ValueError):
            continue
    return first_line


class Ref(str):
    """A value that names another constant (`MIN_LIBVIRT_OTHER_ARCH = {S390X: MIN_LIBVIRT_KVM_S390_VERSION}`)."""


class IntValue(Record):
    """An int-encoded version (libvirt's 9011 = 0.9.11); decoded with the configured encoding."""

    number: int


class Unsupported(Record):
    """An expression minbump does not evaluate (a call, arithmetic); reported, not guessed."""

    text: str


if TYPE_CHECKING:
    Value = Version | Ref | IntValue | Unsupported | dict | list


class Raw(Record):
    name: str
    line: int
    value: Value


class FileScan(Record):
    path: str
    constants: dict[str, Raw] = factory(dict)
    errors: list[tuple[int, str]] = factory(list)
    text: str = ""
    full_parse: bool = False
    # When the whole file does not parse (Python 2-era code): where, as a note; constants are
    # then read statement by statement, and those whose own statement fails are in `broken`.
    notes: list[tuple[int, str]] = factory(list)
    broken: dict[str, tuple[int, str]] = factory(dict)


def default_filter(name: str) -> bool:
    up = name.upper()
    return name == up and ("MIN_" in up or "VERSION" in up or up.startswith(("BAD_", "DENY")))


def _arch_key(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return norm_arch(node.value)
    if isinstance(node, ast.Attribute):  # fields.Architecture.S390X, arch.PPC64LE
        return norm_arch(node.attr)
    if isinstance(node, ast.Name):
        return norm_arch(node.id)
    return None


def _source(node: ast.expr) -> str:
    """The expression as text for a report, cut short; `0x` + 5,000 digits has no decimal form."""
    try:
        text = ast.unparse(node)
    except ValueError:
        return "(an integer too large to be a version)"
    return text if len(text) <= 200 else text[:197] + "..."


def _value(node: ast.expr) -> Value:
    if isinstance(node, (ast.Tuple, ast.List)) and node.elts and all(
            isinstance(e, ast.Constant) and type(e.value) is int for e in node.elts):
        try:
            return Version(tuple(e.value for e in node.elts
                                 if isinstance(e, ast.Constant) and isinstance(e.value, int)))
        except ValueError:
            return Unsupported(_source(node))
    if isinstance(node, ast.Constant):
        if type(node.value) is int:
            return IntValue(node.value) if node.value.bit_length() <= 64 else Unsupported(_source(node))
        if isinstance(node.value, str):
            try:
                return Version.parse(node.value) if re.fullmatch(r"\s*v?\d+(\.\d+)*\s*", node.value) \
                    else Unsupported(_source(node))
            except ValueError:
                return Unsupported(_source(node))
        return Unsupported(_source(node))
    if isinstance(node, ast.Name):
        return Ref(node.id)
    if isinstance(node, ast.Dict):
        out: dict = {}
        for k, v in zip(node.keys, node.values):
            key = _arch_key(k) if k is not None else None
            if key is None:
                return Unsupported(_source(node))
            out[key] = _value(v)
        return out
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_value(e) for e in node.elts]
    if isinstance(node, ast.Call) and not node.keywords and len(node.args) == 1:
        # version.Version("1.2.3") / LooseVersion("1.2.3") / tuple((1, 2)) : take the literal argument
        inner = _value(node.args[0])
        if isinstance(inner, (Version, IntValue)):
            return inner
    return Unsupported(_source(node))


def _statement_end(text: str, start: int) -> int:
    """Offset of the end of the statement starting at `start` (brackets and backslashes)."""
    nl = text.find("\n", start)
    first = text[start:] if nl < 0 else text[start:nl]
    if not any(ch in first for ch in "\"'#\\") and (
            first.count("(") + first.count("[") + first.count("{")
            == first.count(")") + first.count("]") + first.count("}")):
        return len(text) if nl < 0 else nl  # the common one-line `NAME = (1, 2, 3)`
    depth = 0
    quote: str | None = None
    pos = start
    lines = 0
    while pos < len(text):
        nl = text.find("\n", pos)
        stop = len(text) if nl < 0 else nl
        line = text[pos:stop]
        j = 0
        while j < len(line):
            ch = line[j]
            if quote:
                if line.startswith(quote, j):
                    j += len(quote)
                    quote = None
                    continue
                if ch == "\\":
                    j += 2
                    continue
            elif ch == "#":
                break
            elif line.startswith(('"""', "'''"), j):
                quote = line[j:j + 3]
                j += 3
                continue
            elif ch in "\"'":
                quote = ch
            elif ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            j += 1
        if quote in ('"', "'"):
            quote = None  # an unterminated one-line string: let ast report it
        pos = stop + 1
        lines += 1
        if (depth <= 0 and quote is None and not line.rstrip().endswith("\\")) or lines > 2000:
            return stop
    return len(text)


def _collect(tree: ast.Module, line_offset: int, keep: Callable[[str], bool], scan: FileScan) -> None:
    for stmt in tree.body:
        targets: list[ast.expr]
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        for t in targets:
            if isinstance(t, ast.Name) and keep(t.id):
                try:
                    scan.constants[t.id] = Raw(t.id, stmt.lineno + line_offset, _value(value))
                except _TOO_DEEP:
                    raise _too_deep(scan.path, stmt.lineno + line_offset) from None


def _candidate_lines(text: str, literals: tuple[str, ...]) -> list[int]:
    """Offsets of the lines that contain one of `literals`, in order."""
    starts: set[int] = set()
    for lit in literals:
        i = text.find(lit)
        while i >= 0:
            starts.add(text.rfind("\n", 0, i) + 1)
            nl = text.find("\n", i)
            if nl < 0:
                break
            i = text.find(lit, nl)
    return sorted(starts)


def scan_source(data: bytes | str, path: str, keep: Callable[[str], bool] = default_filter,
                literals: tuple[str, ...] = DEFAULT_LITERALS, max_constants: int = MAX_CONSTANTS) -> FileScan:
    """Every top-level constant `keep` accepts, with its line; parse problems as (line, message).

    `literals`: substrings one of which every name `keep` accepts contains. A file
    over the size limit or with more than `max_constants` candidates is not read
    (an error says so).
    """
    scan = FileScan(path)
    if isinstance(data, bytes):
        # The reader leaves a file over its limit unread: a placeholder with the real `size` and the `limit`.
        size, limit = getattr(data, "size", len(data)), getattr(data, "limit", MAX_SOURCE)
        if size > limit or size > MAX_SOURCE:
            scan.errors.append((0, f"not read: too large ({size} bytes; the limit is {min(limit, MAX_SOURCE)} "
                                   "bytes, setting MINBUMP_MAX_SOURCE_BYTES)"))
            return scan
        if b"\0" in data[:8192]:
            scan.errors.append((0, "binary file; not read"))
            return scan
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            scan.errors.append((line, "not UTF-8 text"))
            return scan
    else:
        text = data
    scan.text = text
    strings = _TripleQuotes(text)
    lineno, last = 0, 0
    pieces: list[tuple[int, str]] = []  # (0-based line, statement text)
    for start in _candidate_lines(text, literals):
        m = _CANDIDATE.match(text, start)
        if not m or not keep(m.group(1)):
            continue
        if strings.inside(start):
            continue  # inside a module-level triple-quoted string
        lineno += text.count("\n", last, start)
        last = start
        pieces.append((lineno, text[start:_statement_end(text, start)]))
    if not pieces:
        return scan
    if len(pieces) > max_constants:  # each one is classified and judged: tens of thousands spend seconds
        scan.errors.append((pieces[max_constants][0] + 1, f"not read: too many version-like constants "
                                                           f"({len(pieces)}; the limit is {max_constants})"))
        return scan
    # One parse for all the statements (1,000 constants = 1 compile, not 1,000), each
    # padded to its own line so the tree's line numbers are the file's.
    parts: list[str] = []
    at = 0
    for line, snippet in pieces:
        if line < at:
            return _full_parse(text, path, keep, pieces)  # overlapping statements: let ast decide
        parts.append("\n" * (line - at))
        parts.append(snippet)
        at = line + snippet.count("\n")
    try:
        tree = ast.parse("".join(parts))
    except SyntaxError:
        return _full_parse(text, path, keep, pieces)
    except _TOO_DEEP:
        raise _too_deep(path, next((line + 1 for line, snippet in pieces if _too_deep_snippet(snippet)), 1)) from None
    _collect(tree, 0, keep, scan)
    return scan


def _too_deep_snippet(snippet: str) -> bool:
    try:
        ast.parse(snippet)
    except _TOO_DEEP:
        return True
    except (SyntaxError, ValueError):
        pass
    return False


class _TripleQuotes:
    """Is a position inside a triple-quoted string? Reads the text only as far as asked."""

    def __init__(self, text: str) -> None:
        self._it = _TRIPLE.finditer(text) if ('"""' in text or "'''" in text) else iter(())
        self._count = 0
        self._next: int | None = -1

    def inside(self, pos: int) -> bool:
        while self._next is not None and self._next < pos:
            if self._next >= 0:
                self._count += 1
            m = next(self._it, None)
            self._next = m.start() if m else None
        return self._count % 2 == 1


def _full_parse(text: str, path: str, keep: Callable[[str], bool],
                pieces: list[tuple[int, str]] | None = None) -> FileScan:
    scan = FileScan(path, text=text, full_parse=True)
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        if not pieces:
            scan.errors.append((exc.lineno or 0, f"does not parse: {exc.msg}"))
            return scan
        # Python 2-era code (`0755`, `print x`) elsewhere in the file must not hide the constants.
        scan.notes.append((exc.lineno or 0, f"does not parse as Python 3: {exc.msg}"))
        _by_statement(pieces, keep, scan)
        return scan
    except _TOO_DEEP:
        raise _too_deep(path, _deep_line(text)) from None
    _collect(tree, 0, keep, scan)
    return scan


def _by_statement(pieces: list[tuple[int, str]], keep: Callable[[str], bool], scan: FileScan) -> None:
    """Each candidate statement parsed on its own; one that fails is `broken` at its line."""
    for line, snippet in pieces:
        try:
            tree = ast.parse(snippet)
        except (SyntaxError, RecursionError, MemoryError) as exc:
            m = _CANDIDATE.match(snippet)
            if m:
                where = line + ((exc.lineno or 1) if isinstance(exc, SyntaxError) else 1)
                why = exc.msg if isinstance(exc, SyntaxError) else "nested too deeply to read"
                scan.broken[m.group(1)] = (where, f"does not parse: {why}")
            continue
        _collect(tree, line, keep, scan)


def check_region(text: str, first: int, last: int, path: str = "<source>") -> tuple[int, str] | None:
    """Does the top-level code around lines first..last (1-based) parse? Cheaper than the whole file.

    Used on the lines a change touched, so a syntax error the change brings is
    reported with its line without parsing 14,000 untouched lines. Code too
    deeply nested for `ast` raises UnreadableSource.
    """
    try:
        return _check_region(text, first, last)
    except _TOO_DEEP:
        raise _too_deep(path, _deep_line(text)) from None


def _check_region(text: str, first: int, last: int) -> tuple[int, str] | None:
    lines = text.splitlines()
    if not lines:
        return None
    lo = max(0, min(first, len(lines)) - 1)
    hi = min(len(lines), max(last, first))
    # widen to whole top-level statements: start at a column-0 line, stop before the next one
    while lo > 0 and not _toplevel(lines[lo]):
        lo -= 1
    while hi < len(lines) and not _toplevel(lines[hi]):
        hi += 1
    while lo > 0 and lines[lo - 1].startswith("@"):
        lo -= 1
    snippet = "\n".join(lines[lo:hi])
    try:
        ast.parse(snippet)
        return None
    except SyntaxError:
        pass
    try:
        ast.parse(text)
        return None
    except SyntaxError as exc:
        return (exc.lineno or 0, f"does not parse: {exc.msg}")


def _toplevel(line: str) -> bool:
    return bool(line) and not line[0].isspace() and not line.startswith(("#", ")", "]", "}", "else", "elif",
                                                                          "except", "finally", "@"))


# ----------------------------------------------------------------- usage ---

_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+(\w+)")
_WARN = re.compile(r"warn|deprecat", re.I)


class Use(Record):
    line: int
    function: str | None
    warns: bool


@lru_cache(maxsize=16)  # a per-arch raise asks again about the global NEXT_MIN of the same release
def uses(text: str, name: str) -> tuple[Use, ...]:
    """Where `name` is read outside its own assignment, and whether that function logs a warning."""
    out: list[Use] = []
    seen: dict[int, bool] = {}
    for at in _occurrences(text, name):
        start = text.rfind("\n", 0, at) + 1
        stop = text.find("\n", at)
        line = text[start:stop if stop >= 0 else len(text)]
        stripped = line.lstrip()
        if stripped.startswith("#"):
            continue
        if line is not None and not line[:1].isspace() and re.match(re.escape(name) + r"\s*(?::[^=]*)?=(?!=)", line):
            continue  # the definition itself
        lineno = text.count("\n", 0, start) + 1
        indent = len(line) - len(stripped)
        owner = _enclosing_def(text, start, indent)
        if owner is None:
            out.append(Use(lineno, None, False))
            continue
        if owner[0] not in seen:
            seen[owner[0]] = _function_warns(text, owner[0], owner[1])
        out.append(Use(lineno, owner[2], seen[owner[0]]))
    return tuple(out)


def _occurrences(text: str, name: str):
    """Positions of `name` as a whole word; str.find is far faster than a \\b regex here."""
    i = text.find(name)
    n = len(name)
    while i >= 0:
        before = text[i - 1] if i else " "
        after = text[i + n] if i + n < len(text) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            yield i
        i = text.find(name, i + n)


_DEF_AT = re.compile(r"([ \t]*)(?:async[ \t]+)?def[ \t]+(\w+)")


def _enclosing_def(text: str, pos: int, indent: int) -> tuple[int, int, str] | None:
    """The nearest `def` above `pos` indented less than `indent`: walks back, never the whole file."""
    while pos > 0:
        i = text.rfind("def", 0, pos)
        if i < 0:
            return None
        line_start = text.rfind("\n", 0, i) + 1
        m = _DEF_AT.match(text, line_start)
        if m and m.start(2) > i:
            ind = len(m.group(1).expandtabs())
            if ind < indent:
                return line_start, ind, m.group(2)
        pos = i
    return None


def _function_warns(text: str, pos: int, base: int) -> bool:
    """Does the function starting at `pos` (indented `base`) call something that warns?"""
    body_start = text.find("\n", pos) + 1
    end_rx = re.compile(rf"^[ \t]{{0,{base}}}(?=[^\s#)\]}}])", re.M)
    m = end_rx.search(text, body_start) if body_start > 0 else None
    chunk = text[pos:m.start() if m else len(text)]
    body = "\n".join(ln[base:] if ln[:base].isspace() or not ln[:base] else ln.lstrip()
                     for ln in chunk.splitlines())
    try:
        tree = ast.parse(body)
    except (SyntaxError, ValueError, *_TOO_DEEP):
        return bool(_WARN.search(body))  # a heuristic answer is enough for "does it warn"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if _WARN.search(fname):
                return True
    return False
