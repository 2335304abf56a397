"""The S&OP dashboard for Apache Superset, as a Superset import bundle (a ZIP of YAML).

    python bi/superset/bundle.py --db $SOP_HOME/published/sop.duckdb --out dashboard.zip
    .venv-superset/bin/superset import-dashboards -p dashboard.zip -u admin

``make superset`` runs both. The bundle holds one database (the published file, opened
read-only through duckdb-engine with external access and extension loading off, the
settings of docs/bi.md), one dataset per ``<table>_current`` view the charts read (columns
and descriptions from the data dictionary when it can be imported), five charts and the
dashboard. Runs with the standard library plus PyYAML; no Superset import.

``CHARTS`` is also what ``tests/test_superset.py`` asks Superset for and recomputes on the
file with DuckDB.
"""

from __future__ import annotations

import argparse
import io
import sys
import uuid
import zipfile
from pathlib import Path

import yaml

NAMESPACE = uuid.UUID("5f0c2a52-9a51-4a39-9e0a-0c9b1f3e5d17")
DATABASE_NAME = "S&OP published plan"
#: DuckDB settings of a BI connection (the same as sop_pipeline.publish.writer.BI_CONFIG
#: except lock_configuration, which duckdb-engine's own SET on connect would trip over).
DUCKDB_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}

#: The dashboard's charts: view, chart type, the category/time column, groups, metrics.
CHARTS: list[dict] = [
    {
        "name": "Revenue vs AOP by family",
        "view": "plan_financials_current",
        "viz": "echarts_timeseries_bar",
        "x": "family",
        "groupby": [],
        "metrics": {
            "revenue": "SUM(revenue)",
            "aop_revenue": "SUM(aop_revenue)",
            "revenue_vs_aop": "SUM(revenue_vs_aop)",
        },
    },
    {
        "name": "Inventory cover and stock-out risk by family",
        "view": "plan_inventory_current",
        "viz": "table",
        "x": "family",
        "groupby": [],
        "metrics": {
            "avg_days_of_cover": "AVG(days_of_cover)",
            "shortage_qty": "SUM(shortage_qty)",
            "share_of_months_short": "AVG(CASE WHEN shortage_qty > 0 THEN 1.0 ELSE 0.0 END)",
        },
    },
    {
        "name": "Capacity utilization by work center",
        "view": "plan_capacity_current",
        "viz": "table",
        "x": "work_center_id",
        "groupby": [],
        "metrics": {
            "max_utilization": "MAX(utilization)",
            "avg_utilization": "AVG(utilization)",
            "required_hours": "SUM(required_hours)",
            "available_hours": "SUM(available_hours)",
        },
    },
    {
        "name": "KPI status",
        "view": "kpi_scorecard_current",
        "viz": "table",
        "x": "kpi",
        "groupby": ["scope", "status"],
        "metrics": {"value": "MAX(value)", "target": "MAX(target)"},
    },
    {
        "name": "Scenario deltas over the horizon",
        "view": "scenario_comparison_current",
        "viz": "table",
        "x": "scenario",
        "groupby": ["metric"],
        "metrics": {"delta": "SUM(delta)"},
    },
]


def _uuid(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


def _describe(view: str) -> tuple[list[tuple[str, str, str | None]], str | None]:
    """Columns (name, type, description) and description of a view, from the dictionary."""
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from sop_pipeline.publish import dictionary
    except ImportError:  # the bundle still imports; Superset then syncs the columns itself
        return [], None
    base = dictionary.base_table(view)
    columns = [
        (name, duck_type or "VARCHAR", dictionary.column_description(base, name))
        for name, duck_type, _stable in dictionary.documented_columns(base)
    ]
    return columns, dictionary.view_description(view)


def adhoc_metrics(chart: dict) -> list[dict]:
    """The chart's metrics as Superset adhoc SQL metrics."""
    return [
        {
            "expressionType": "SQL",
            "sqlExpression": expr,
            "label": label,
            "hasCustomLabel": True,
            "optionName": f"metric_{label}",
        }
        for label, expr in chart["metrics"].items()
    ]


def _chart_params(chart: dict) -> dict:
    params = {"viz_type": chart["viz"], "metrics": adhoc_metrics(chart), "row_limit": 10000}
    if chart["viz"] == "table":
        params.update(
            query_mode="aggregate",
            groupby=[chart["x"], *chart["groupby"]],
            order_desc=False,
            include_time=False,
        )
    else:
        params.update(
            x_axis=chart["x"],
            groupby=chart["groupby"],
            xAxisForceCategorical=True,
            x_axis_sort_asc=True,
            orientation="vertical",
            show_legend=True,
        )
    return params


def bundle(db_path: Path) -> bytes:
    """The import ZIP for ``db_path`` (absolute path of the published sop.duckdb)."""
    root = "sop_dashboard"
    db_uuid = _uuid("database")
    files: dict[str, dict] = {
        "metadata.yaml": {
            "version": "1.0.0",
            "type": "Dashboard",
            "timestamp": "2026-12-02T00:00:00+00:00",
        },
        "databases/sop_published.yaml": {
            "database_name": DATABASE_NAME,
            "sqlalchemy_uri": f"duckdb:///{Path(db_path).resolve()}",
            "cache_timeout": None,
            "expose_in_sqllab": True,
            "allow_run_async": False,
            "allow_ctas": False,
            "allow_cvas": False,
            "allow_dml": False,
            "allow_file_upload": False,
            "extra": {
                "engine_params": {"connect_args": {"read_only": True, "config": DUCKDB_CONFIG}},
                "metadata_params": {},
                "schemas_allowed_for_file_upload": [],
            },
            "uuid": db_uuid,
            "version": "1.0.0",
        },
    }
    position: dict = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": "S&OP plan"}},
    }
    for view in sorted({c["view"] for c in CHARTS}):
        columns, description = _describe(view)
        files[f"datasets/sop_published/{view}.yaml"] = {
            "table_name": view,
            "main_dttm_col": None,
            "description": description,
            "default_endpoint": None,
            "offset": 0,
            "cache_timeout": 0,
            "schema": "main",
            "sql": None,
            "params": None,
            "template_params": None,
            "filter_select_enabled": True,
            "fetch_values_predicate": None,
            "extra": None,
            "normalize_columns": False,
            "always_filter_main_dttm": False,
            "uuid": _uuid(f"dataset:{view}"),
            "metrics": [
                {
                    "metric_name": "count",
                    "verbose_name": "COUNT(*)",
                    "metric_type": "count",
                    "expression": "COUNT(*)",
                    "description": None,
                    "d3format": None,
                    "extra": None,
                    "warning_text": None,
                }
            ],
            "columns": [
                {
                    "column_name": name,
                    "verbose_name": None,
                    "is_dttm": duck_type in ("DATE", "TIMESTAMP"),
                    "is_active": True,
                    "type": duck_type,
                    "advanced_data_type": None,
                    "groupby": True,
                    "filterable": True,
                    "expression": None,
                    "description": text,
                    "python_date_format": None,
                    "extra": None,
                }
                for name, duck_type, text in columns
            ],
            "version": "1.0.0",
            "database_uuid": db_uuid,
        }
    rows = []
    for i, chart in enumerate(CHARTS):
        chart_uuid = _uuid(f"chart:{chart['name']}")
        stem = f"chart_{i + 1}"
        files[f"charts/{stem}.yaml"] = {
            "slice_name": chart["name"],
            "description": f"From {chart['view']} (published/sop.duckdb).",
            "certified_by": None,
            "certification_details": None,
            "viz_type": chart["viz"],
            "params": _chart_params(chart),
            "query_context": None,
            "cache_timeout": 0,
            "uuid": chart_uuid,
            "version": "1.0.0",
            "dataset_uuid": _uuid(f"dataset:{chart['view']}"),
        }
        row = f"ROW-{i // 2 + 1}"
        if i % 2 == 0:
            rows.append(row)
            position[row] = {
                "type": "ROW",
                "id": row,
                "children": [],
                "parents": ["ROOT_ID", "GRID_ID"],
                "meta": {"background": "BACKGROUND_TRANSPARENT"},
            }
        position[row]["children"].append(f"CHART-{stem}")
        position[f"CHART-{stem}"] = {
            "type": "CHART",
            "id": f"CHART-{stem}",
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID", row],
            "meta": {
                "width": 6,
                "height": 60,
                "chartId": i + 1,
                "uuid": chart_uuid,
                "sliceName": chart["name"],
            },
        }
    position["GRID_ID"]["children"] = rows
    files["dashboards/sop_plan.yaml"] = {
        "dashboard_title": "S&OP plan",
        "description": None,
        "css": "",
        "slug": "sop-plan",
        "certified_by": "",
        "certification_details": "",
        "published": True,
        "uuid": _uuid("dashboard"),
        "position": position,
        "metadata": {
            "color_scheme": "",
            "refresh_frequency": 0,
            "expanded_slices": {},
            "label_colors": {},
            "timed_refresh_immune_slices": [],
            "cross_filters_enabled": True,
            "default_filters": "{}",
            "chart_configuration": {},
            "native_filter_configuration": [],
            "shared_label_colors": [],
        },
        "version": "1.0.0",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in sorted(files.items()):
            zf.writestr(
                f"{root}/{name}", yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
            )
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Write the Superset import bundle for a published database; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="published/sop.duckdb")
    parser.add_argument("--out", type=Path, required=True, help="the ZIP to write")
    args = parser.parse_args(argv)
    if not args.db.exists():
        print(f"{args.db} does not exist: publish a plan first (make demo).", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(bundle(args.db))
    print(f"wrote {args.out} ({len(CHARTS)} charts on {args.db})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
