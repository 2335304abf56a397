"""Helpers that turn results into Dagster metadata: schemas, typed numbers, tables, plots.

Every asset of the project goes through these so the UI shows the same things the same
way: a column schema (``dagster/column_schema``, with the data dictionary's descriptions),
numbers rounded with their unit in the key (``consensus_qty (units)``), money formatted
with its currency (``54,915,524.81 USD``), counts by category as tables (never a dict
printed as text) and previews as ``MetadataValue.table``.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence

import dagster as dg
import pandas as pd

from sop_pipeline.publish import dictionary
from sop_pipeline.publish.tables import TABLES

#: DuckDB type of a published column → the type name the Dagster UI shows.
_DUCK_TO_UI = {
    "VARCHAR": "string",
    "DOUBLE": "float",
    "INTEGER": "int",
    "BIGINT": "int",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "BOOLEAN": "bool",
}

#: Working tables of the ``plan`` schema that are not published, with their columns.
WORKING_TABLES: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "stat_forecast": (
        "One row per item × location × horizon month.",
        {
            "plan_month": ("string", dictionary.COLUMNS["plan_month"]),
            "item_id": ("string", dictionary.COLUMNS["item_id"]),
            "location_id": ("string", dictionary.COLUMNS["location_id"]),
            "month": ("date", dictionary.COLUMNS["month"]),
            **{
                c: ("float", dictionary.TABLE_COLUMNS["plan_demand"][c])
                for c in (
                    "stat_forecast_qty",
                    "stat_lo80_qty",
                    "stat_hi80_qty",
                    "stat_lo95_qty",
                    "stat_hi95_qty",
                )
            },
            "stat_model": ("string", dictionary.TABLE_COLUMNS["plan_demand"]["stat_model"]),
            "naive_forecast_qty": ("float", "Seasonal naive forecast (the benchmark), units."),
        },
    ),
    "supply_shortages": (
        "One row per item × location × month with a shortage.",
        {
            "plan_month": ("string", dictionary.COLUMNS["plan_month"]),
            "item_id": ("string", dictionary.COLUMNS["item_id"]),
            "location_id": ("string", dictionary.COLUMNS["location_id"]),
            "month": ("date", dictionary.COLUMNS["month"]),
            "shortage_qty": ("float", "Demand the plan cannot serve, units."),
            "binding_constraint": ("string", "What prevents more supply, in words."),
            "constraint_type": ("string", "capacity / lead_time / no_source / trade_off."),
            "work_center_id": ("string", "Work center whose hours bind (capacity), else null."),
            "shadow_price": ("float", "Objective saving per extra hour of that work center."),
        },
    ),
    "gate_results": (
        "One row per gate check of the candidate plan.",
        {
            "plan_month": ("string", dictionary.COLUMNS["plan_month"]),
            "check_name": ("string", "Gate check (suite:<table>:<expectation> or consistency)."),
            "table_name": ("string", "Candidate plan table checked."),
            "passed": ("bool", "The check passed."),
            "evaluated": ("int", "Rows or values evaluated, count."),
            "message": ("string", "What failed and where (empty when passed)."),
            "run_id": ("string", "Dagster run id of the gate."),
        },
    ),
}


def published_schema(table: str) -> dg.TableSchema:
    """The column schema of a published table: stable and documented extra columns."""
    columns = [
        dg.TableColumn(
            name=name,
            type=_DUCK_TO_UI.get(duck_type, duck_type.lower() or "unknown"),
            description=dictionary.column_description(table, name),
        )
        for name, duck_type, _stable in dictionary.documented_columns(table)
    ]
    return dg.TableSchema(columns=columns)


def working_schema(table: str) -> dg.TableSchema:
    """The column schema of a working ``plan`` table listed in :data:`WORKING_TABLES`."""
    _grain, columns = WORKING_TABLES[table]
    return dg.TableSchema(
        columns=[dg.TableColumn(name=n, type=t, description=d) for n, (t, d) in columns.items()]
    )


def schema_of_frame(df: pd.DataFrame, table: str | None = None) -> dg.TableSchema:
    """The column schema of a frame as materialized, with the dictionary's descriptions."""
    columns = []
    for name, dtype in df.dtypes.items():
        kind = dtype.kind if hasattr(dtype, "kind") else "O"
        ui = {"f": "float", "i": "int", "u": "int", "b": "bool", "M": "timestamp"}.get(
            kind, "string"
        )
        text = dictionary.column_description(table, str(name)) if table else None
        columns.append(dg.TableColumn(name=str(name), type=ui, description=text))
    return dg.TableSchema(columns=columns)


def schema_metadata(schema: dg.TableSchema) -> dict[str, dg.MetadataValue]:
    """``{"dagster/column_schema": ...}`` for an asset definition or a materialization."""
    return {"dagster/column_schema": dg.MetadataValue.table_schema(schema)}


def plan_table_metadata(table: str) -> dict[str, dg.MetadataValue]:
    """Definition metadata of an asset that builds ``plan.<table>``: schema and grain."""
    if table in TABLES:
        return {
            **schema_metadata(published_schema(table)),
            "grain": dg.MetadataValue.text(TABLES[table].grain),
            "published_as": dg.MetadataValue.text(
                f"published/sop.duckdb: {table}, {table}_current, {table}_latest_versions"
            ),
        }
    grain, _cols = WORKING_TABLES[table]
    return {**schema_metadata(working_schema(table)), "grain": dg.MetadataValue.text(grain)}


def _finite(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def qty(value, digits: int = 1) -> dg.MetadataValue:
    """A quantity rounded for people (units, hours): ``MetadataValue.float``."""
    out = _finite(value)
    return (
        dg.MetadataValue.float(round(out, digits)) if out is not None else dg.MetadataValue.null()
    )


def share(value) -> dg.MetadataValue:
    """A share 0-1 rounded to 4 digits (0.9731 = 97.31%)."""
    return qty(value, 4)


def money(value, currency: str = "USD") -> dg.MetadataValue:
    """Money formatted with thousands separators and its currency: ``54,915,524.81 USD``."""
    out = _finite(value)
    if out is None:
        return dg.MetadataValue.text("n/a")
    return dg.MetadataValue.text(f"{out:,.2f} {currency}")


def count_table(counts: Mapping, key: str, value: str = "count") -> dg.MetadataValue:
    """Counts by category (``{"AutoETS": 120, ...}``) as a two-column table, largest first."""
    rows = sorted(((str(k), v) for k, v in dict(counts).items()), key=lambda kv: str(kv[0]))
    rows.sort(key=lambda kv: -(_finite(kv[1]) or 0.0))
    is_int = all(
        isinstance(v, int | bool) or float(v).is_integer()
        for _, v in rows
        if _finite(v) is not None
    )
    records = [
        dg.TableRecord(
            {
                key: k,
                value: (int(v) if is_int else round(float(v), 3))
                if _finite(v) is not None
                else None,
            }
        )
        for k, v in rows
    ]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(key, "string"),
            dg.TableColumn(value, "int" if is_int else "float"),
        ]
    )
    return dg.MetadataValue.table(records=records, schema=schema)


def _cell(value):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, int | bool | str):
        return value
    if pd.isna(value):
        return None
    return str(value)


def preview(df: pd.DataFrame, rows: int = 10, table: str | None = None) -> dg.MetadataValue:
    """The first rows of a frame as a ``MetadataValue.table`` (floats to 2 digits, ISO dates)."""
    head = df.head(rows)
    schema = schema_of_frame(head if len(head) else df, table)
    records = [
        dg.TableRecord({str(c): _cell(v) for c, v in zip(head.columns, row, strict=True)})
        for row in head.itertuples(index=False, name=None)
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def png(fig) -> dg.MetadataValue:
    """A matplotlib figure as an inline PNG in Markdown (rendered as an image in the UI)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{data})")


def seconds_table(seconds: Mapping[str, float]) -> dg.MetadataValue:
    """Wall seconds by stage as a table (``stage``, ``seconds``)."""
    return count_table(
        {k: round(float(v), 2) for k, v in dict(seconds).items()}, "stage", "seconds"
    )


def text_list(items: Sequence) -> dg.MetadataValue:
    """A list of notes as a Markdown bullet list (``_none_`` when empty)."""
    return dg.MetadataValue.md("\n".join(f"- {i}" for i in items) if items else "_none_")


def family_forecast_png(history: pd.DataFrame, plan_demand: pd.DataFrame, families: int = 4):
    """History + consensus + 80/95% band for the largest families, as a PNG metadata value.

    The pack's family forecast chart as a still image (report/figures.py says why a PNG).
    """
    from sop_pipeline.report.figures import family_forecast_still

    return png(family_forecast_still(history, plan_demand, families))


#: What the lineage columns of every ``raw`` table hold (docs/internals.md).
LINEAGE_DESCRIPTIONS = {
    "_extract_month": "Extract month (landing/YYYY-MM folder) the row came from.",
    "_source_file": "File the row came from (path under landing/).",
    "_source_row": "Line number in that file (header = line 1).",
    "_loaded_at": "When ingest loaded the row, UTC timestamp.",
}
_CONTRACT_TO_UI = {
    "str": "string",
    "int": "int",
    "num": "decimal(18,6)",
    "date": "date",
    "month": "date",
}


def raw_schema(extract) -> dg.TableSchema:
    """The column schema of ``raw.<extract>``: contract columns, then the lineage columns."""
    from sop_pipeline.ingest.contract import LINEAGE_COLUMNS

    columns = []
    for col in extract.columns:
        notes = ["required" if col.required else "may be empty"]
        if col.allowed:
            notes.append("one of " + ", ".join(col.allowed))
        if col.min_value is not None:
            notes.append(f">= {col.min_value:g}")
        columns.append(
            dg.TableColumn(
                name=col.name,
                type=_CONTRACT_TO_UI.get(col.type, col.type),
                description=f"Extract contract column ({'; '.join(notes)}).",
                constraints=dg.TableColumnConstraints(nullable=not col.required),
            )
        )
    for name in LINEAGE_COLUMNS:
        columns.append(
            dg.TableColumn(
                name=name,
                type="timestamp"
                if name == "_loaded_at"
                else ("int" if name == "_source_row" else "string"),
                description=LINEAGE_DESCRIPTIONS.get(name, "lineage"),
            )
        )
    return dg.TableSchema(columns=columns)


def published_tables_md() -> str:
    """The published tables with their grain and views, as a Markdown table."""
    lines = ["| table | what | views |", "|---|---|---|"]
    for name in TABLES:
        views = (
            ", ".join(f"`{name}{s}`" for s in dictionary.VIEW_SUFFIXES)
            if name != "plan_versions"
            else ""
        )
        lines.append(f"| `{name}` | {dictionary.table_description(name)} | {views} |")
    return "\n".join(lines)


def plan_in(table: str) -> dg.AssetIn:
    """An input of this month's rows of ``plan.<table>`` (loaded by the IO manager)."""
    return dg.AssetIn(key=dg.AssetKey(["plan", table]))


def mart_in(model: str) -> dg.AssetIn:
    """An input of the dbt mart ``marts.<model>`` of the month (loaded by the IO manager)."""
    return dg.AssetIn(key=dg.AssetKey(["marts", model]))


def table_ins(plans: Sequence[str] = (), marts: Sequence[str] = ()) -> dict[str, dg.AssetIn]:
    """Inputs named after their tables: this month's ``plan.<table>`` rows, then ``marts.<model>``."""
    return {**{t: plan_in(t) for t in plans}, **{m: mart_in(m) for m in marts}}


def plan_table_asset(
    table: str, *, kinds: frozenset[str] | set[str] = frozenset({"python", "duckdb"}), **kwargs
):
    """``@dg.asset`` for ``plan/<table>``: one plan month per run, stored by the IO manager.

    Adds what every plan-table asset shares: its key, the plan-month partitions and their
    one-month-per-run backfill policy, the published table's schema as metadata and the
    ``sop_warehouse`` pool (one writer on the working DuckDB file). ``kwargs`` are the
    asset's own: group, ins, deps, description, owners, tags, check specs.
    """
    from sop_pipeline.defs.partitions import MONTHLY_RUNS, plan_month_partitions

    return dg.asset(
        key=dg.AssetKey(["plan", table]),
        partitions_def=plan_month_partitions,
        backfill_policy=MONTHLY_RUNS,
        kinds=set(kinds),
        metadata=plan_table_metadata(table),
        pool="sop_warehouse",
        **kwargs,
    )
