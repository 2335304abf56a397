"""Contract rules of the ``bom`` and ``supplier_capacity`` extracts that GX cannot state.

A bill of material is a graph, not a list of independent rows: a cycle (A needs B, B needs
A), two validity windows of one parent/component pair that overlap, or a zero quantity make
the whole structure unusable, so the loader rejects the whole file when any of these is
found (``WHOLE_FILE_EXTRACTS`` in ``loader.py``). Every problem names the file line, the
column, the value and the fix, like every other extract rule.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

#: add(rows, column, values, reason, fix) — ``reader._Problems.add``.
AddProblem = Callable[[np.ndarray, str, object, object, str], None]

#: A cycle message lists at most this many items.
_CYCLE_SHOWN = 8


def _num(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.astype("float64"), errors="coerce")


def bom_rules(frame: pd.DataFrame, texts, add: AddProblem) -> None:
    """qty_per > 0, 0 ≤ scrap_pct < 1, valid_from ≤ valid_to, no overlap, no cycle.

    Args:
        frame: the typed bom frame (contract columns + ``_source_row``).
        texts: column → the values as written (``reader._Text``; ``texts[c][mask]``).
        add: where problems go (one call per rule and column).
    """
    rows = frame["_source_row"].to_numpy()
    qty = _num(frame["qty_per"])
    bad = (qty <= 0).fillna(False).to_numpy()
    written = texts["qty_per"][bad] if bad.any() else pd.Series([], dtype=object)
    add(
        rows[bad],
        "qty_per",
        written.tolist(),
        "qty_per " + written.astype(str) + " is not "
        "greater than 0 (a component the parent does not consume is not a BOM line)",
        "write the quantity of the component per unit of the parent (> 0), or drop the line",
    )
    scrap = _num(frame["scrap_pct"])
    bad = ((scrap < 0) | (scrap >= 1)).fillna(False).to_numpy()
    written = texts["scrap_pct"][bad] if bad.any() else pd.Series([], dtype=object)
    add(
        rows[bad],
        "scrap_pct",
        written.tolist(),
        "scrap_pct " + written.astype(str) + " is "
        "outside [0, 1) (it is the share of the component lost in production)",
        "write scrap as a fraction from 0 up to (not including) 1, e.g. 0.05 for 5%",
    )
    start = frame["valid_from"]
    end = frame["valid_to"]
    bad = (start.notna() & end.notna() & (end < start)).to_numpy()
    add(
        rows[bad],
        "valid_to",
        end[bad].dt.strftime("%Y-%m-%d").tolist(),
        "valid_to "
        + end[bad].dt.strftime("%Y-%m-%d").reset_index(drop=True)
        + " is before valid_from "
        + start[bad].dt.strftime("%Y-%m-%d").reset_index(drop=True),
        "swap the dates or correct them in the source system",
    )
    _overlaps(frame, add)
    _cycles(frame, add)


def _overlaps(frame: pd.DataFrame, add: AddProblem) -> None:
    """Two lines of one parent/component whose validity windows share a day."""
    pairs = frame[["parent_item_id", "component_item_id", "valid_from", "valid_to", "_source_row"]]
    pairs = pairs.dropna(subset=["parent_item_id", "component_item_id"])
    lo = pairs["valid_from"].fillna(pd.Timestamp.min)
    hi = pairs["valid_to"].fillna(pd.Timestamp.max)
    pairs = pairs.assign(_lo=lo, _hi=hi).sort_values(
        ["parent_item_id", "component_item_id", "_lo", "_source_row"], kind="stable"
    )
    same = (pairs["parent_item_id"] == pairs["parent_item_id"].shift()) & (
        pairs["component_item_id"] == pairs["component_item_id"].shift()
    )
    # the latest end of the earlier windows of the pair (a long window may cover several)
    running_hi = pairs.groupby(["parent_item_id", "component_item_id"], sort=False)["_hi"].cummax()
    prev_hi = running_hi.groupby([pairs["parent_item_id"], pairs["component_item_id"]]).shift()
    prev_row = pairs.groupby(["parent_item_id", "component_item_id"], sort=False)[
        "_source_row"
    ].shift()
    bad = (same & (pairs["_lo"] <= prev_hi)).to_numpy()
    if not bad.any():
        return
    hit = pairs[bad]
    shown = hit["valid_from"].dt.strftime("%Y-%m-%d").fillna("(empty)").reset_index(drop=True)
    add(
        hit["_source_row"].to_numpy(),
        "valid_from",
        shown.tolist(),
        "the validity of "
        + hit["parent_item_id"].astype(str).reset_index(drop=True)
        + " → "
        + hit["component_item_id"].astype(str).reset_index(drop=True)
        + " from "
        + shown
        + " overlaps an earlier line of the same parent and component (row "
        + prev_row[bad].astype("int64").astype(str).reset_index(drop=True)
        + ")",
        "end the earlier line's valid_to the day before this line's valid_from (one line "
        "per parent, component and day)",
    )


def _cycles(frame: pd.DataFrame, add: AddProblem) -> None:
    """Lines whose parent and component lie on one cycle (an item needs itself)."""
    edges = frame.dropna(subset=["parent_item_id", "component_item_id"])
    if edges.empty:
        return
    names = pd.Index(
        pd.unique(pd.concat([edges["parent_item_id"], edges["component_item_id"]]).astype(str))
    )
    src = names.get_indexer(edges["parent_item_id"].astype(str))
    dst = names.get_indexer(edges["component_item_id"].astype(str))
    graph = sparse.csr_matrix((np.ones(len(src)), (src, dst)), shape=(len(names), len(names)))
    _, label = connected_components(graph, directed=True, connection="strong")
    size = np.bincount(label)
    in_cycle = (label[src] == label[dst]) & ((size[label[src]] > 1) | (src == dst))
    if not in_cycle.any():
        return
    members = {lab: sorted(names[label == lab].tolist()) for lab in np.unique(label[src[in_cycle]])}

    def describe(lab: int) -> str:
        items = members[lab]
        shown = ", ".join(items[:_CYCLE_SHOWN]) + (" …" if len(items) > _CYCLE_SHOWN else "")
        return shown

    hit = edges[in_cycle]
    reason = [
        f"{p} → {c} closes a cycle in the BOM (items on the cycle: {describe(lab)}): an item "
        "would need itself to be made"
        for p, c, lab in zip(
            hit["parent_item_id"].astype(str),
            hit["component_item_id"].astype(str),
            label[src[in_cycle]],
            strict=True,
        )
    ]
    add(
        hit["_source_row"].to_numpy(),
        "component_item_id",
        hit["component_item_id"].astype(str).tolist(),
        pd.Series(reason, dtype=object),
        "remove the line that points back up the structure (a component cannot contain its "
        "own parent)",
    )


def supplier_capacity_rules(frame: pd.DataFrame, add: AddProblem) -> None:
    """Each supplier_capacity row names exactly one of item_id and family.

    Args:
        frame: the typed supplier_capacity frame.
        add: where problems go.
    """
    rows = frame["_source_row"].to_numpy()
    neither = (frame["item_id"].isna() & frame["family"].isna()).to_numpy()
    add(
        rows[neither],
        "item_id",
        [None] * int(neither.sum()),
        "neither item_id nor family is filled",
        "fill item_id (one item) or family (every item of the family) on every row",
    )
    both = (frame["item_id"].notna() & frame["family"].notna()).to_numpy()
    add(
        rows[both],
        "family",
        frame.loc[both, "family"].astype(str).tolist(),
        "both item_id and family are filled, so the row's scope is ambiguous",
        "keep item_id for an item's capacity or family for a family's, not both",
    )
