"""`minbump validate` and `minbump matrix ...`: look at and maintain the data behind every answer.

Registered on the main click group by `bot.cli` when one of its commands is
named (a dry-run never imports it); heavy modules are imported inside commands.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import click

from bot.cli.params import day_option as _date_opt

if TYPE_CHECKING:  # pragma: no cover
    from bot.core.matrix import Matrix

LEGEND = "legend: 1.2.9? = low confidence (verify before relying on it); - = not known"


def _today() -> date:
    """The one place these commands read the clock: interactive defaults only."""
    return date.today()


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------- validate ---

def _expand(paths: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(x for x in p.rglob("*") if x.suffix in (".yaml", ".yml") and x.is_file()))
        else:
            out.append(p)
    return out


def validate_cmd(paths: tuple[str, ...], kind: str | None) -> None:
    """Check policy and config files against their JSON Schemas.

    With no PATH, every YAML file under the shipped policy/ folder. The kind
    (matrix, calendar, config, preset, facts) is inferred from the file's
    place and keys unless --kind is given. Prints `file:line: key.path: message`.
    Exit status: 0 valid, 1 schema errors, 2 a file could not be read.
    """
    from bot.errors import MinbumpError
    from bot.data.policy_files import support_table_errors
    from bot.data.schema import infer_kind, policy_files, validate_file

    files = _expand(paths) if paths else policy_files()
    n_err = unreadable = 0
    for f in files:
        try:
            errors = validate_file(f, kind)
            if not errors and (kind or infer_kind(f, None) or "config") == "config":
                errors = support_table_errors(str(f))  # the tables it names exist and parse
        except MinbumpError as exc:
            click.echo(f"{exc}", err=True)
            unreadable += 1
            continue
        for e in errors:
            click.echo(str(type(e)(_rel(f), e.line, e.key_path, e.message)))
        n_err += len(errors)
    if unreadable:
        sys.exit(2)
    if n_err:
        click.echo(f"minbump: {n_err} error(s) in {len(files)} file(s)", err=True)
        sys.exit(1)
    click.echo(f"minbump: {len(files)} file(s) valid", err=True)


# ------------------------------------------------------------ loading ---

def _config_bits(config_path: str | None) -> tuple[list[Path], int | None]:
    """Override files and max data age from a repository config, paths made relative to its repo."""
    if not config_path:
        return [], None
    from bot.data.config import from_file

    cfg = from_file(config_path)
    where = Path(config_path).resolve().parent
    root = where.parent if where.name == ".github" else where
    return [root / m for m in cfg.matrix], cfg.max_data_age_days


def _load(matrix_files: tuple[str, ...], config_path: str | None = None) -> tuple[Matrix, int | None]:
    from bot.errors import MinbumpError
    from bot.data.matrix import with_overrides

    from_cfg, max_age = _config_bits(config_path)
    files = list(from_cfg) + [Path(f) for f in matrix_files]
    for f in files:
        _check_override(f)
    try:
        return with_overrides(files), max_age
    except (KeyError, TypeError) as exc:
        raise MinbumpError(f"a matrix override file is malformed ({exc})") from None


def _check_override(path: Path) -> None:
    """Validate a project's own matrix file first: a typo must not silently change the answer."""
    from bot.errors import MinbumpError
    from bot.data.schema import validate_file

    if not path.is_file():
        raise MinbumpError(f"{path}: no such matrix file")
    errors = validate_file(path, "matrix")
    if errors:
        more = f" (and {len(errors) - 1} more; run `minbump validate {path}`)" if len(errors) > 1 else ""
        raise MinbumpError(f"{errors[0]}{more}")


def _components(matrix: Matrix, component: str | None) -> list[str]:
    from bot.errors import MinbumpError

    known = list(matrix.components)
    if component is None:
        return known
    if component not in known and not matrix.knows_component(component):
        raise MinbumpError(f"unknown component {component!r} (the matrix has: {', '.join(known)})")
    return [component]


def _default_age() -> int:
    from bot.core.matrix import DEFAULT_MAX_DATA_AGE_DAYS

    return DEFAULT_MAX_DATA_AGE_DAYS


def _warn_freshness(matrix: Matrix, max_age: int) -> None:
    from bot.core.matrix import freshness_warning

    msg = freshness_warning(matrix, _today(), max_age)
    if msg:
        click.echo(f"minbump: warning: {msg}", err=True)


# --------------------------------------------------------------- show ---

def _cell_text(version: Any, confidence: str) -> str:
    if version is None:
        return "-"
    return f"{version}?" if confidence == "low" else str(version)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
    lines += [fmt.format(*r).rstrip() for r in rows]
    return "\n".join(lines)


def show_cmd(component: str | None, as_of: date | None, arch: str | None, fmt: str, include_all: bool,
             rule: str, matrix_files: tuple[str, ...], max_age: int | None, config_path: str | None) -> None:
    """Which platforms are supported on a date, what they ship and when their support ends."""
    import csv
    import io
    import json

    matrix, cfg_age = _load(matrix_files, config_path)
    day = as_of or _today()
    comps = _components(matrix, component)
    from bot.core.matrix_query import show_rows

    rows = show_rows(matrix, comps, day, rule, arch, include_all)
    age = max_age if max_age is not None else (cfg_age if cfg_age is not None else _default_age())
    _warn_freshness(matrix, age)
    data_as_of = matrix.data_as_of.isoformat() if matrix.data_as_of else None
    if fmt == "json":
        click.echo(json.dumps({"as_of": day.isoformat(), "support_rule": rule, "data_as_of": data_as_of,
                               "data_origins": list(matrix.origins), "components": comps,
                               "platforms": rows}, indent=2))
        return
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["platform", "label", "released", "eol", "extended_support", "extended_end",
                    "support_end", "status"] + comps)
        for r in rows:
            ext = r["extended_support"] or {}
            w.writerow([r["platform"], r["label"], r["released"] or "", r["eol"] or "", ext.get("name", ""),
                        ext.get("end", ""), r["support_end"] or "", r["status"]]
                       + [_cell_text(r["ships"][c]["version"], r["ships"][c]["confidence"]) for c in comps])
        click.echo(buf.getvalue(), nl=False)
        click.echo(LEGEND, err=True)  # stderr: keeps stdout plain CSV
        return
    scope = f", arch {arch}" if arch else ""
    which = "all platforms" if include_all else "platforms supported"
    click.echo(f"{which} on {day.isoformat()} (rule: {rule}{scope}); data as of {data_as_of or 'unknown'}"
               + (f"; overrides: {', '.join(matrix.origins[1:])}" if len(matrix.origins) > 1 else ""))
    header = ["platform", "released", "eol", "extended"] + comps + (["status"] if include_all else [])
    table_rows = []
    for r in rows:
        ext = r["extended_support"]
        cells = [r["label"], r["released"] or "-", r["eol"] or "-",
                 f"{ext['name']} {ext['end']}" if ext else "-"]
        cells += [_cell_text(r["ships"][c]["version"], r["ships"][c]["confidence"]) for c in comps]
        if include_all:
            cells.append(r["status"])
        table_rows.append(cells)
    if not table_rows:
        click.echo("(no platforms)")
        return
    click.echo(_table(table_rows, header))
    click.echo(LEGEND)


# ------------------------------------------------------------ what-if ---

def _mitigation_text(m: dict) -> str:
    text = f"{m['name']} ({m.get('version')}"
    if m.get("confidence") == "low":
        text += ", low confidence"
    text += ")"
    if m.get("enable"):
        text += f" [enable: {m['enable']}]"
    return text


def what_if_cmd(component: str, version: str, as_of: date | None, arch: str | None, hypervisor: str | None,
                rule: str, fmt: str, matrix_files: tuple[str, ...], config_path: str | None) -> None:
    """Which platforms a minimum of VERSION would drop, with no git repository needed."""
    import json

    matrix, cfg_age = _load(matrix_files, config_path)
    _components(matrix, component)
    day = as_of or _today()
    from bot.core.matrix_query import what_if

    data = what_if(matrix, component, version, day, rule, arch, hypervisor)
    _warn_freshness(matrix, cfg_age if cfg_age is not None else _default_age())
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    from bot.core.matrix_query import what_if_groups

    groups = what_if_groups(matrix, data["impacted"], day, rule)
    live, gone, unknown = groups["live"], groups["gone"], groups["unknown"]
    scope = "".join(f", {k} {v}" for k, v in (("arch", arch), ("hypervisor", hypervisor)) if v)
    click.echo(f"{component} >= {version} on {day.isoformat()} (rule: {rule}{scope}): "
               f"{len(live)} still-supported and {len(gone)} already unsupported platform(s) below it"
               + (f"; {len(unknown)} with a version the data does not know" if unknown else ""))
    sections = [("Still supported", live, "support ends"), ("No longer supported", gone, "support ended")]
    if unknown:
        sections.append(("Version not known (run `minbump matrix audit`)", unknown, "support ends"))
    for title, group, end_word in sections:
        click.echo(f"\n{title} ({len(group)}):")
        if not group:
            click.echo("  (none)")
            continue
        rows = []
        for i in group:
            ships = _cell_text(i["shipped"], i["confidence"]) if i["shipped"] else "unknown"
            mit = "; ".join(_mitigation_text(m) for m in i["mitigations"])
            origin = "" if i["data_origin"] == "policy/matrix.yaml" else f" [from {i['data_origin']}]"
            word = "minor ended" if i.get("superseded") else end_word
            if group is unknown and not i["still_supported"]:
                word = "support ended"
            rows.append([i["label"], ships, f"{word} {i['support_end'] or '?'}",
                         (f"mitigation: {mit}" if mit else "no mitigation known") + origin])
        click.echo("\n".join("  " + line for line in _table(rows, ["platform", component, "support", "options"])
                             .splitlines()))
    if matrix.out_of_scope:
        click.echo(f"\nLeft out by the project ({len(matrix.out_of_scope)}):")
        for pid, reason in matrix.out_of_scope.items():
            click.echo(f"  {pid}: {reason}")
    click.echo("\n" + LEGEND)


# -------------------------------------------------------------- audit ---

def _known_releases(endoflife: tuple[str, ...], repology: tuple[str, ...]) -> list:
    """Read importer answers given as FILE or PRODUCT=FILE (endoflife.date product from the name if not given)."""
    from bot.errors import MinbumpError
    from bot.data.importers import EOL_PRODUCTS, known_from_endoflife, known_from_repology, load_json_file

    known: list = []
    for spec in endoflife:
        product, sep, path = spec.partition("=")
        if not sep:
            path = spec
            stem = Path(spec).stem
            product = stem if stem in EOL_PRODUCTS else stem.rsplit("-", 1)[0]
            if product not in EOL_PRODUCTS:
                raise MinbumpError(f"{spec}: cannot tell the endoflife.date product from the name; "
                                   f"pass PRODUCT={spec} (known: {', '.join(sorted(EOL_PRODUCTS))})")
        known += known_from_endoflife(load_json_file(path), product)
    for path in repology:
        known += known_from_repology(load_json_file(path))
    return known


def audit_cmd(as_of: date | None, rule: str, endoflife: tuple[str, ...], repology: tuple[str, ...], fmt: str,
              matrix_files: tuple[str, ...]) -> None:
    """What the data does not know yet; exit 0 with findings (CI prints, never fails on them)."""
    import json

    from bot.core.data_audit import LOW, MISSING, UNKNOWN, audit

    matrix, _ = _load(matrix_files)
    day = as_of or _today()
    findings = audit(matrix, day, rule, _known_releases(endoflife, repology))
    data_as_of = matrix.data_as_of.isoformat() if matrix.data_as_of else None
    if fmt == "json":
        click.echo(json.dumps({"as_of": day.isoformat(), "support_rule": rule, "data_as_of": data_as_of,
                               "findings": [f.to_dict() for f in findings]}, indent=2))
        return
    click.echo(f"matrix audit on {day.isoformat()} (rule: {rule}); data as of {data_as_of or 'unknown'}: "
               f"{len(findings)} finding(s)")
    for kind, title in ((UNKNOWN, "Supported releases with a version the data does not know"),
                        (LOW, "Supported releases with a low-confidence version"),
                        (MISSING, "Releases the importers know that the data lacks")):
        group = [f for f in findings if f.kind == kind]
        if not group:
            continue
        click.echo(f"\n{title} ({len(group)}):")
        rows = [[f.label, f.component or "-", f.detail,
                 f"support ends {f.support_end.isoformat()}" if f.support_end else "-"] for f in group]
        click.echo("\n".join("  " + line for line in _table(rows, ["release", "component", "finding", "support"])
                             .splitlines()))


# ------------------------------------------------------------- import ---

def import_cmd(source: str, file: str | None, url: str | None, product: str | None, component: str | None,
               matrix_path: str | None, write: bool, today: date | None, timeout: float) -> None:
    """Update the matrix from an endoflife.date or repology answer; prints what changed."""
    from bot.errors import MinbumpError
    from bot.data.importers import (fetch_json, import_endoflife, import_repology, load_json_file,
                            read_matrix_yaml, write_matrix_yaml)
    from bot.data.paths import policy_dir
    from bot.data.schema import validate_data

    if bool(file) == bool(url):
        raise click.UsageError("give either FILE or --url")
    if source == "endoflife" and not product:
        raise click.UsageError("--from endoflife needs --product (e.g. ubuntu, rhel, debian)")
    if source == "repology" and not component:
        raise click.UsageError("--from repology needs --component (e.g. libvirt)")
    target = Path(matrix_path) if matrix_path else policy_dir() / "matrix.yaml"
    raw, header = read_matrix_yaml(target)
    payload = fetch_json(url, timeout) if url else load_json_file(file)  # type: ignore[arg-type]
    day = today or _today()
    if source == "endoflife":
        result = import_endoflife(raw, payload, product or "", day)
    else:
        result = import_repology(raw, payload, component or "", day)
    click.echo(f"{_rel(target)}: import from {source} ({url or file})")
    click.echo(result.diff_text())
    if not result.changed:
        return
    errors = validate_data(result.data, "matrix", None, str(target))
    if errors:
        raise MinbumpError(f"the imported data does not pass the matrix schema: {errors[0]}")
    if write:
        write_matrix_yaml(target, result.data, header)
        click.echo(f"wrote {_rel(target)}")
    else:
        click.echo("(dry run: pass --write to update the file)")


# ----------------------------------------------------------- register ---

_MATRIX_OPT = click.option("--matrix", "matrix_files", multiple=True, type=click.Path(dir_okay=False),
                           help="A project's own matrix file applied over the shipped one (repeatable).")
_CONFIG_OPT = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                           help="A repository's .github/minbump.yml: its `matrix:` files and max_data_age_days apply.")
_RULE_OPT = click.option("--rule", type=click.Choice(["standard", "extended"]), default="standard",
                         show_default=True, help="Count extended support (ESM, ELS, LTSS...) as support or not.")


def register(cli: click.Group) -> None:
    """Add `validate` and the `matrix` group to the main command group."""

    @cli.command("validate")
    @click.argument("paths", nargs=-1, type=click.Path())
    @click.option("--kind", type=click.Choice(["matrix", "calendar", "config", "preset", "facts"]),
                  help="Treat every PATH as this kind instead of guessing.")
    def validate(paths: tuple[str, ...], kind: str | None) -> None:
        validate_cmd(paths, kind)

    validate.help = validate_cmd.__doc__

    @cli.group("matrix")
    def matrix() -> None:
        """Inspect and update the support matrix."""

    @matrix.command("show")
    @click.option("--component", help="Only this component's column (default: all).")
    @click.option("--as-of", "as_of", callback=_date_opt, help="Judge support on this date (default: today).")
    @click.option("--arch", help="Only platforms with this architecture (x86_64, aarch64, ppc64le, s390x).")
    @click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
    @click.option("--all", "include_all", is_flag=True, help="Include platforms not supported on that date.")
    @_RULE_OPT
    @_MATRIX_OPT
    @_CONFIG_OPT
    @click.option("--max-age-days", type=click.IntRange(min=1),
                  help="Warn when the data is older than this (default: config max_data_age_days, else 180).")
    def show(component: str | None, as_of: date | None, arch: str | None, fmt: str, include_all: bool, rule: str,
             matrix_files: tuple[str, ...], config_path: str | None, max_age_days: int | None) -> None:
        """Which platforms are supported on a date, what they ship, and when their support ends."""
        show_cmd(component, as_of, arch, fmt, include_all, rule, matrix_files, max_age_days, config_path)

    @matrix.command("what-if")
    @click.argument("component")
    @click.argument("version")
    @click.option("--as-of", "as_of", callback=_date_opt, help="Judge support on this date (default: today).")
    @click.option("--arch", help="Only platforms with this architecture.")
    @click.option("--hypervisor", help="Only platforms that run this hypervisor driver.")
    @_RULE_OPT
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
    @_MATRIX_OPT
    @_CONFIG_OPT
    def what_if(component: str, version: str, as_of: date | None, arch: str | None, hypervisor: str | None,
                rule: str, fmt: str, matrix_files: tuple[str, ...], config_path: str | None) -> None:
        """Which platforms a minimum COMPONENT VERSION would drop, and what their operators can do."""
        what_if_cmd(component, version, as_of, arch, hypervisor, rule, fmt, matrix_files, config_path)

    @matrix.command("audit")
    @click.option("--as-of", "as_of", callback=_date_opt, help="Judge support on this date (default: today).")
    @_RULE_OPT
    @click.option("--endoflife", multiple=True, metavar="[PRODUCT=]FILE",
                  help="An endoflife.date answer; its releases the matrix lacks are listed (repeatable).")
    @click.option("--repology", multiple=True, type=click.Path(dir_okay=False),
                  help="A repology project answer; its releases the matrix lacks are listed (repeatable).")
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
    @_MATRIX_OPT
    def audit(as_of: date | None, rule: str, endoflife: tuple[str, ...], repology: tuple[str, ...], fmt: str,
              matrix_files: tuple[str, ...]) -> None:
        """List what the data does not know yet: unknown or low-confidence versions on supported releases,
        and releases the importers know that the matrix lacks. Findings are information: exit status 0."""
        audit_cmd(as_of, rule, endoflife, repology, fmt, matrix_files)

    @matrix.command("import")
    @click.option("--from", "source", type=click.Choice(["endoflife", "repology"]), required=True)
    @click.argument("file", required=False, type=click.Path(dir_okay=False))
    @click.option("--url", help="Fetch the answer instead of reading FILE (needs network).")
    @click.option("--product", help="endoflife.date product (ubuntu, debian, rhel, sles, ...).")
    @click.option("--component", help="repology: the component the project JSON is about (libvirt, qemu).")
    @click.option("--matrix", "matrix_path", type=click.Path(dir_okay=False),
                  help="The matrix file to update (default: the shipped policy/matrix.yaml).")
    @click.option("--write", is_flag=True, help="Write the changes (default: only print them).")
    @click.option("--today", callback=_date_opt, help="Date recorded in the new sources (default: today).")
    @click.option("--timeout", type=float, default=20.0, show_default=True, help="Seconds to wait for --url.")
    def import_(source: str, file: str | None, url: str | None, product: str | None, component: str | None,
                matrix_path: str | None, write: bool, today: date | None, timeout: float) -> None:
        """Update dates from endoflife.date or versions from repology, printing a diff.

        Dates follow endoflife.date; versions only move forward. Every changed
        fact gets the import appended to its platform's sources, and a value
        that disagrees with ours is kept in the platform's conflicts.
        """
        import_cmd(source, file, url, product, component, matrix_path, write, today, timeout)
