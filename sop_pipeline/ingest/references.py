"""The loader's checks against the database: foreign keys and currency codes.

Foreign keys are checked against the master data of the same month or earlier, currency
codes against the base currency and ``fx_rates``.

Internal to the loader (:mod:`sop_pipeline.ingest.loader`).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from sop_pipeline.ingest.contract import Extract
from sop_pipeline.ingest.problems import RowProblem

#: Columns whose currency code must be the base currency or have an fx rate.
CURRENCY_COLUMNS = {"items": "currency", "sales_orders": "currency", "opportunities": "currency"}


# --------------------------------------------------------------------------------------
# checks against the database (foreign keys, currencies)
# --------------------------------------------------------------------------------------


class _KnownValues:
    """The first extract month of every master-data value, read once per run.

    ``value known for month m`` ⇔ ``first month <= m``: the same answer as looking the
    value up in the master rows of month m or earlier, without re-reading those rows for
    every file (on a first load of 60 months that was 60 reads of each master table per
    referencing extract). An entry is dropped when its table is written.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, base_currency: str):
        self.con = con
        self.base_currency = base_currency
        self._cache: dict[tuple[str, str], pd.Series] = {}

    def _read(self, table: str, what: str, sql: str) -> pd.Series:
        key = (table, what)
        if key not in self._cache:
            df = self.con.execute(sql).df()
            self._cache[key] = pd.Series(df["m"].to_numpy(), index=df["v"].to_numpy())
        return self._cache[key]

    def column(self, extract: str, column: str) -> pd.Series:
        """Each value → its first ``_extract_month`` of ``raw.<extract>.<column>``."""
        return self._read(
            extract,
            column,
            f"SELECT {column} AS v, min(_extract_month) AS m FROM raw.{extract} "
            f"WHERE {column} IS NOT NULL GROUP BY 1",
        )

    def currencies(self) -> pd.Series:
        """Each currency → the first month it has an fx rate; the base currency is always known."""
        rates = self.column("fx_rates", "currency")
        rates = rates[rates.index != self.base_currency]
        return pd.concat([pd.Series([""], index=[self.base_currency]), rates])

    def scopes(self) -> pd.Series:
        """item_id or family → first month it is in the items extract."""
        return self._read(
            "items",
            "scope",
            "SELECT v, min(m) AS m FROM (SELECT item_id AS v, _extract_month AS m FROM raw.items "
            "UNION ALL SELECT family, _extract_month FROM raw.items WHERE family IS NOT NULL) "
            "GROUP BY v",
        )

    def written(self, extract: str) -> None:
        """Forget what was read of ``raw.<extract>``: rows were just written to it."""
        for key in [k for k in self._cache if k[0] == extract]:
            del self._cache[key]


def _unknown_values(
    frame: pd.DataFrame, column: str, first_month: pd.Series, month: str
) -> tuple[np.ndarray, list]:
    """Rows and values of ``frame`` whose non-null ``column`` is not known by ``month``."""
    values = frame[column]
    present = values.notna().to_numpy()
    if not present.any():
        return np.zeros(0, np.int64), []
    first = values[present].map(first_month)
    bad = (first.isna() | (first.fillna("") > month)).to_numpy()
    rows = frame["_source_row"].to_numpy()[present][bad]
    return rows, values[present][bad].tolist()


def _reference_problems(
    known: _KnownValues, extract: Extract, frame: pd.DataFrame, month: str
) -> list[RowProblem]:
    problems: list[RowProblem] = []
    for fk in extract.foreign_keys:
        if fk.column not in frame:
            continue
        rows, values = _unknown_values(
            frame, fk.column, known.column(fk.ref_extract, fk.ref_column), month
        )
        problems += [
            RowProblem(
                int(r),
                fk.column,
                str(v),
                f"unknown {fk.column} '{v}': not in {fk.ref_extract}.{fk.ref_column} of {month} or earlier",
                f"add it to the {fk.ref_extract} extract or correct the value",
            )
            for r, v in zip(rows, values, strict=True)
        ]
    currency_col = CURRENCY_COLUMNS.get(extract.name)
    if currency_col:
        rows, values = _unknown_values(frame, currency_col, known.currencies(), month)
        problems += [
            RowProblem(
                int(r),
                currency_col,
                str(v),
                f"currency '{v}' is neither the base currency {known.base_currency} nor in fx_rates of {month} or earlier",
                "add its rates to the fx_rates extract or correct the currency code",
            )
            for r, v in zip(rows, values, strict=True)
        ]
    if extract.name == "supplier_capacity" and "family" in frame:
        rows, values = _unknown_values(frame, "family", known.column("items", "family"), month)
        problems += [
            RowProblem(
                int(r),
                "family",
                str(v),
                f"unknown family '{v}': no item of items of {month} or earlier has it",
                "use a family name from the items extract, or give the item_id instead",
            )
            for r, v in zip(rows, values, strict=True)
        ]
    if extract.name == "demand_overrides":
        rows, values = _unknown_values(frame, "scope", known.scopes(), month)
        problems += [
            RowProblem(
                int(r),
                "scope",
                str(v),
                f"scope '{v}' is neither an item_id nor a family in items of {month} or earlier",
                "use an item_id or a family name from the items extract",
            )
            for r, v in zip(rows, values, strict=True)
        ]
    return problems
