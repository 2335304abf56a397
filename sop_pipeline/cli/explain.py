"""``sop explain``: where a published number comes from, down to the extract file rows.

    sop explain --month 2026-06 --table plan_demand --where "family='Pumps'"

prints, for the published rows the filter selects:

1. the publication: plan month, plan version, run id, code version, input fingerprint,
   published at, base currency, and the totals of the selected rows;
2. the extract rows that fed them, by file (extract month, file, rows, first and last
   ``_source_row``), read point in time the way the dbt staging models read them (the
   latest extract month <= the plan month wins per key): the sales order lines behind the
   demand history, the planner overrides and the open CRM opportunities behind the
   consensus change, and the inventory snapshot behind the opening stock;
3. with ``--rows N``, the first N of those rows one by one.

It reads the published file read-only (as BI does) and the working database read-only for
the raw extract tables; when a pipeline run holds the working database it says so in one
line (exit 1) instead of waiting or failing with a traceback.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from sop_pipeline.errors import InvalidInputError, OperationalError
from sop_pipeline.publish.tables import TABLES

#: ``col='value'`` (or a number) joined by AND: the only filters explain accepts.
_CONDITION = re.compile(
    r"^\s*([a-z_][a-z0-9_]*)\s*=\s*(?:'((?:[^']|'')*)'|(-?\d+(?:\.\d+)?))\s*$", re.I
)
_AND = re.compile(r"\s+and\s+", re.I)


class ExplainError(InvalidInputError, ValueError):
    """A usage problem (bad table, filter, month or version); the message says what to do."""


class WarehouseLocked(OperationalError, RuntimeError):  # noqa: N818 - tests/test_explain.py catches it by this name
    """The working database is held by a running pipeline."""


@dataclass(frozen=True)
class Filter:
    """Column = value conditions of ``--where``, checked against the table's columns."""

    conditions: tuple[tuple[str, object], ...]

    def sql(self, alias: str = "") -> tuple[str, list]:
        """The conditions as a SQL ``where`` clause with ``?`` placeholders, and its parameters."""
        prefix = f"{alias}." if alias else ""
        parts = [f'{prefix}"{c}" = ?' for c, _ in self.conditions]
        return (" and ".join(parts) or "true"), [v for _, v in self.conditions]

    def get(self, column: str):
        """The value ``column`` is filtered on, or None."""
        return next((v for c, v in self.conditions if c == column), None)


def parse_where(where: str | None, table: str) -> Filter:
    """Parse ``family='X' and month='2026-07-01'`` for ``table``.

    Raises:
        ExplainError: an expression that is not ``column = 'value'`` joined by AND, or a
            column the table does not have.
    """
    if not where or not where.strip():
        return Filter(())
    spec = TABLES[table]
    conditions = []
    for part in _AND.split(where.strip()):
        m = _CONDITION.match(part)
        if not m:
            raise ExplainError(
                f"--where {where!r}: {part.strip()!r} is not column='value'; write conditions "
                f"like \"family='Pumps' and month='2026-07-01'\"."
            )
        column, text, number = m.group(1).lower(), m.group(2), m.group(3)
        if column not in spec.column_names:
            raise ExplainError(
                f"--where: {table} has no column {column!r}; use one of "
                f"{', '.join(spec.column_names)}."
            )
        value: object = text.replace("''", "'") if text is not None else float(number)
        conditions.append((column, value))
    return Filter(tuple(conditions))


def _connect_published(path: Path) -> duckdb.DuckDBPyConnection:
    from sop_pipeline.publish.published_file import BI_CONFIG

    if not path.exists():
        raise ExplainError(f"{path} does not exist; nothing has been published yet (sop run).")
    return duckdb.connect(str(path), read_only=True, config=dict(BI_CONFIG))


def connect_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """The working database, read-only; :class:`WarehouseLocked` if a run holds it."""
    if not path.exists():
        raise ExplainError(
            f"{path} does not exist; run `sop run` first (explain reads its raw tables)."
        )
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            pid = re.search(r"PID (\d+)", text)
            who = f" (pid {pid.group(1)})" if pid else ""
            raise WarehouseLocked(
                f"the working database {path} is in use by a running pipeline{who}; run "
                f"`sop explain` again when the run has finished (`sop status` shows it)."
            ) from None
        raise


@dataclass
class Explanation:
    """What ``sop explain`` found; :func:`render` prints it."""

    version: dict
    table: str
    where: str
    totals: pd.DataFrame
    sources: dict[str, pd.DataFrame]  # section → one row per file
    rows: dict[str, pd.DataFrame]  # section → the first rows


def _version(pub, month: str, version: int | None) -> dict:
    cols = [
        r[0]
        for r in pub.execute(
            "select column_name from duckdb_columns() where table_name = 'plan_versions'"
        ).fetchall()
    ]
    wanted = [
        c
        for c in (
            "plan_month",
            "plan_version",
            "run_id",
            "code_version",
            "input_fingerprint",
            "published_at",
            "base_currency",
            "is_backfill",
            "status",
        )
        if c in cols
    ]
    sql = f"select {', '.join(wanted)} from plan_versions where plan_month = ?"
    params: list = [month]
    if version is not None:
        sql += " and plan_version = ?"
        params.append(int(version))
    sql += " order by plan_version desc limit 1"
    row = pub.execute(sql, params).fetchone()
    if row is None:
        have = [
            r[0]
            for r in pub.execute(
                "select distinct plan_month from plan_versions order by 1"
            ).fetchall()
        ]
        what = f"version {version} of {month}" if version is not None else f"plan month {month}"
        raise ExplainError(
            f"{what} is not published; published plan months: {', '.join(have) or 'none'}."
        )
    return dict(zip(wanted, row, strict=True))


def _totals(pub, table: str, month: str, version: int, flt: Filter) -> pd.DataFrame:
    spec = TABLES[table]
    measures = [c for c, t in spec.columns if t == "DOUBLE"]
    where, params = flt.sql()
    agg = ", ".join(f'sum("{c}") as "{c}"' for c in measures)
    sql = (
        f'select count(*) as "rows"{", " + agg if agg else ""} from "{table}" '
        f"where plan_month = ? and plan_version = ? and {where}"
    )
    return pub.execute(sql, [month, version, *params]).df()


def _items(wh, month: str, flt: Filter) -> list[str] | None:
    """Item ids the filter selects (None: no item/family condition, i.e. all items)."""
    item, family = flt.get("item_id"), flt.get("family")
    if item is None and family is None:
        return None
    if item is not None:
        return [str(item)]
    rows = wh.execute(
        "select distinct item_id from raw.items where family = ? and _extract_month = "
        "(select max(_extract_month) from raw.items where _extract_month <= ?) order by 1",
        [family, month],
    ).fetchall()
    return [r[0] for r in rows]


def _in(column: str, values: list[str] | None) -> tuple[str, list]:
    if values is None:
        return "true", []
    if not values:
        return "false", []
    return f"{column} in ({', '.join('?' for _ in values)})", list(values)


_BY_FILE = """
    select _extract_month as extract_month, _source_file as source_file, count(*) as "rows",
           min(_source_row) as first_source_row, max(_source_row) as last_source_row{extra}
    from picked group by 1, 2 order by 1, 2
"""


def _section(wh, picked_sql: str, params: list, extra: str, columns: str, limit: int):
    base = f"with picked as ({picked_sql}) "
    by_file = wh.execute(base + _BY_FILE.format(extra=extra), params).df()
    rows = (
        wh.execute(
            base
            + f"select {columns} from picked order by _extract_month, _source_file, _source_row "
            f"limit {int(limit)}",
            params,
        ).df()
        if limit
        else pd.DataFrame()
    )
    return by_file, rows


def explain(
    published: Path,
    warehouse: Path,
    month: str,
    table: str,
    where: str | None = None,
    version: int | None = None,
    rows: int = 0,
) -> Explanation:
    """Trace the published rows of ``table`` that ``where`` selects back to the extracts.

    Raises:
        ExplainError: an unknown table, a bad filter, an unpublished month or version.
        WarehouseLocked: a pipeline run holds the working database.
    """
    if table not in TABLES or table == "plan_versions":
        raise ExplainError(
            f"--table {table!r} is not a published plan table; use one of "
            f"{', '.join(t for t in TABLES if t != 'plan_versions')}."
        )
    flt = parse_where(where, table)
    pub = _connect_published(published)
    try:
        info = _version(pub, month, version)
        totals = _totals(pub, table, month, int(info["plan_version"]), flt)
        if flt.conditions and int(totals["rows"].iloc[0]) == 0:
            column = flt.conditions[0][0]
            known = [
                str(r[0])
                for r in pub.execute(
                    f'select distinct "{column}" from "{table}" where plan_month = ? and '
                    f"plan_version = ? order by 1 limit 12",
                    [month, int(info["plan_version"])],
                ).fetchall()
            ]
            raise ExplainError(
                f"no row of {table} (plan {month} v{info['plan_version']}) matches {where}; "
                f"{column} values there: {', '.join(known) or 'none'}."
            )
    finally:
        pub.close()
    sources: dict[str, pd.DataFrame] = {}
    detail: dict[str, pd.DataFrame] = {}
    wh = connect_warehouse(warehouse)
    try:
        items = _items(wh, month, flt)
        loc = flt.get("location_id")
        cond, params = _in("item_id", items)
        loc_cond = "location_id = ?" if loc is not None else "true"
        loc_params = [loc] if loc is not None else []
        # demand history: sales order lines requested up to the plan month's end
        picked = f"""
            select * from (
                select *, row_number() over (partition by order_id, line_no
                    order by _extract_month desc, _source_row desc) as extract_rank
                from raw.sales_orders where _extract_month <= ?)
            where extract_rank = 1 and {cond} and {loc_cond}
              and strftime(requested_date, '%Y-%m') <= ?
        """
        sources["demand history (sales_orders)"], detail["demand history (sales_orders)"] = (
            _section(
                wh,
                picked,
                [month, *params, *loc_params, month],
                ", sum(qty_ordered) as qty_ordered, sum(qty_shipped) as qty_shipped",
                "_extract_month, _source_file, _source_row, order_id, line_no, item_id, "
                "location_id, requested_date, qty_ordered, qty_shipped, status",
                rows,
            )
        )
        if table in ("plan_demand", "plan_financials", "plan_gaps", "scenario_comparison"):
            family = flt.get("family")
            scope_values = [*(items or []), *([str(family)] if family is not None else [])]
            scope_cond, scope_params = _in(
                "trim(scope)", scope_values if items is not None else None
            )
            picked = f"""
                select * from raw.demand_overrides
                where _extract_month = (select max(_extract_month) from raw.demand_overrides
                                        where _extract_month <= ?)
                  and {scope_cond} and strftime(month, '%Y-%m') > ?
            """
            sources["overrides (demand_overrides)"], detail["overrides (demand_overrides)"] = (
                _section(
                    wh,
                    picked,
                    [month, *scope_params, month],
                    "",
                    "_extract_month, _source_file, _source_row, scope, month, adjustment, "
                    "reason_code, author, comment",
                    rows,
                )
            )
            fam_cond, fam_params = (
                ("(family = ? or " + cond + ")", [family, *params])
                if family is not None
                else (cond, params)
            )
            picked = f"""
                select * from (
                    select *, row_number() over (partition by opportunity_id
                        order by _extract_month desc, _source_row desc) as extract_rank
                    from raw.opportunities where _extract_month <= ?)
                where extract_rank = 1 and stage not like 'closed%' and {fam_cond}
                  and strftime(expected_close_date, '%Y-%m') > ?
            """
            key = "CRM pipeline (opportunities, open)"
            sources[key], detail[key] = _section(
                wh,
                picked,
                [month, *fam_params, month],
                ", sum(expected_qty) as expected_qty, sum(expected_qty * probability) as weighted_qty",
                "_extract_month, _source_file, _source_row, opportunity_id, item_id, family, "
                "stage, probability, expected_qty, expected_close_date",
                rows,
            )
        if table in ("plan_inventory", "plan_supply", "plan_gaps"):
            picked = f"""
                select * from raw.inventory
                where _extract_month = (select max(_extract_month) from raw.inventory
                                        where _extract_month <= ?)
                  and {cond} and {loc_cond}
            """
            key = "opening stock (inventory snapshot)"
            sources[key], detail[key] = _section(
                wh,
                picked,
                [month, *params, *loc_params],
                ", sum(qty_on_hand) as qty_on_hand",
                "_extract_month, _source_file, _source_row, snapshot_date, item_id, "
                "location_id, lot_id, qty_on_hand",
                rows,
            )
    except duckdb.CatalogException as exc:
        raise ExplainError(
            f"the working database has no raw extract tables ({str(exc).splitlines()[0]}); "
            f"run `sop run --month {month}` first."
        ) from None
    finally:
        wh.close()
    return Explanation(info, table, where or "", totals, sources, detail)


def _fmt(df: pd.DataFrame) -> str:
    if df.empty:
        return "  (none)"
    shown = df.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:,.2f}")
    return "\n".join("  " + line for line in shown.to_string(index=False).splitlines())


def render(ex: Explanation) -> str:
    """The explanation as plain text (what ``sop explain`` prints)."""
    v = ex.version
    lines = [
        f"{ex.table} where {ex.where or '(all rows)'}: plan {v['plan_month']} version "
        f"{v['plan_version']}",
        f"  run id             {v.get('run_id')}",
        f"  code version       {v.get('code_version')}",
        f"  input fingerprint  {v.get('input_fingerprint')}",
        f"  published at       {v.get('published_at')} UTC",
    ]
    if v.get("base_currency"):
        lines.append(f"  base currency      {v['base_currency']}")
    if v.get("status"):
        lines.append(f"  status             {v['status']}")
    lines += ["", "Published rows selected (sums):", _fmt(ex.totals)]
    for name, by_file in ex.sources.items():
        lines += ["", f"Extract rows behind it: {name}, by file:", _fmt(by_file)]
        if name.startswith("CRM") and not by_file.empty:
            lines.append(
                "  (weighted_qty = expected_qty × probability; the consensus adds only the part "
                "above the baseline share of the statistical forecast: crm_adjustment_qty)"
            )
        first = ex.rows.get(name)
        if first is not None and not first.empty:
            lines += [f"  first {len(first)} rows:", _fmt(first)]
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction, month_arg) -> None:
    """Register ``sop explain`` on the ``sop`` parser."""
    p = sub.add_parser(
        "explain",
        help="trace published rows back to the plan version and the extract rows behind them",
    )
    p.add_argument("--month", type=month_arg, required=True, help="plan month YYYY-MM")
    p.add_argument("--table", required=True, help="published table, e.g. plan_demand")
    p.add_argument("--where", default=None, help="filter, e.g. \"family='Pumps'\"")
    p.add_argument("--version", type=int, default=None, help="plan version (default: latest)")
    p.add_argument("--rows", type=int, default=0, help="also list the first N extract rows")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    """``sop explain``: exit 0, 1 (working database locked) or 2 (usage)."""
    from sop_pipeline.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, console, err
    from sop_pipeline.core.settings import Settings

    settings = Settings.from_env()
    try:
        ex = explain(
            settings.published_dir / "sop.duckdb",
            settings.warehouse_path,
            args.month,
            args.table,
            args.where,
            args.version,
            args.rows,
        )
    except ExplainError as exc:
        err.print(f"sop explain: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except WarehouseLocked as exc:
        err.print(f"sop explain: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    console.print(render(ex), markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK
