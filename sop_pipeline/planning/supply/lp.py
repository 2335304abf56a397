"""The LP of one block, solved with HiGHS.

``_solve_block`` builds the block's variables, objective, bounds and sparse constraints
(inventory balance, safety stock, production change, capacity, and with materials their
balance and supplier capacity); ``_block_materials`` picks the materials the block's series
consume; ``_highs`` solves it (unmet demand first, then the costs) and returns the plan and
the row duals; ``_HIGHS_OPTIONS`` holds extra solver options.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
from scipy import sparse

from sop_pipeline.planning.supply.model import (
    QTY_EPS,
    SupplyCosts,
    SupplyPlanError,
    _Problem,
)

# Extra HiGHS options (e.g. {"time_limit": 120.0}); the defaults solve every block size we measured.
_HIGHS_OPTIONS: dict[str, object] = {}


@dataclass
class _BlockSolution:
    replenish: np.ndarray
    inventory: np.ndarray
    shortage: np.ndarray
    overtime: np.ndarray
    shadow: np.ndarray
    terms: dict[str, float]
    n_variables: int
    n_constraints: int


def _highs(
    obj: np.ndarray,
    bounds: np.ndarray,
    a_ub: sparse.csr_matrix | None,
    b_ub: np.ndarray | None,
    a_eq: sparse.csr_matrix,
    b_eq: np.ndarray,
    label: str,
    first: np.ndarray | None = None,
    options: dict[str, object] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``min obj·x`` with HiGHS; returns x and the row duals (≤ rows first).

    With ``first`` (a cost vector), lexicographically: ``min first·x``, then ``min obj·x``
    with ``first·x`` kept at that minimum; the duals are the first stage's (what one more
    unit of a row saves of ``first``).
    """
    blocks = [a_ub, a_eq] if a_ub is not None else [a_eq]
    matrix = sparse.vstack(blocks, format="csc")
    lower = np.concatenate(
        [np.full(0 if a_ub is None else a_ub.shape[0], -highspy.kHighsInf), b_eq]
    )
    upper = np.concatenate([np.zeros(0) if b_ub is None else b_ub, b_eq])
    lp = highspy.HighsLp()
    lp.num_col_ = len(obj)
    lp.num_row_ = matrix.shape[0]
    lp.col_cost_ = obj if first is None else first
    lp.col_lower_ = bounds[:, 0]
    lp.col_upper_ = np.where(np.isinf(bounds[:, 1]), highspy.kHighsInf, bounds[:, 1])
    lp.row_lower_ = lower
    lp.row_upper_ = upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("random_seed", 0)
    solver.setOptionValue("threads", 1)
    for key, value in {**(options or {}), **_HIGHS_OPTIONS}.items():
        solver.setOptionValue(key, value)
    solver.passModel(lp)
    solver.run()
    if first is not None and solver.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        duals = np.asarray(solver.getSolution().row_dual, dtype=float)
        best = float(solver.getInfo().objective_function_value)
        used = np.flatnonzero(first)
        # keep the first stage's optimum (a hair of slack for the solver's tolerances)
        solver.addRow(
            -highspy.kHighsInf, best + 1e-9 * abs(best) + 1e-6, len(used), used, first[used]
        )
        solver.changeColsCost(len(obj), np.arange(len(obj), dtype=np.int32), obj)
        solver.run()
        status = solver.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            x = np.asarray(solver.getSolution().col_value, dtype=float)
            return x, duals
    status = solver.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise SupplyPlanError(
            f"HiGHS could not solve the supply LP block of {label} "
            f"(status: {solver.modelStatusToString(status)}). Shortages make the model always "
            "feasible, so this points at invalid numbers in the inputs (NaN or infinite demand, "
            "capacity, hours_per_unit or unit costs); check those marts for the block's items."
        )
    solution = solver.getSolution()
    return np.asarray(solution.col_value, dtype=float), np.asarray(solution.row_dual, dtype=float)


@dataclass
class _BlockMaterials:
    s: np.ndarray  # link → local series row
    c: np.ndarray  # link → local material row
    tau: np.ndarray
    t: np.ndarray
    qty: np.ndarray
    materials: np.ndarray  # local material row → network material × location
    src: np.ndarray  # purchase options of the block (network positions)
    src_c: np.ndarray  # option → local material row
    cap_row: np.ndarray  # option → local supplier-capacity row (−1: none)
    caps: np.ndarray  # local supplier-capacity row → network row


def _block_materials(p: _Problem, rows: np.ndarray) -> _BlockMaterials | None:
    """The materials the block's series consume, their purchase options and supplier rows."""
    links, net = p.links, p.network
    if links is None or net is None or not len(links.s):
        return None
    local = np.full(len(p.demand), -1)
    local[rows] = np.arange(len(rows))
    keep = local[links.s] >= 0
    if not keep.any():
        return None
    materials, c = np.unique(links.c[keep], return_inverse=True)
    src = np.flatnonzero(np.isin(net.src_c, materials))
    cap = net.src_cap[src]
    caps, inverse = np.unique(cap[cap >= 0], return_inverse=True)
    cap_row = np.full(len(src), -1)
    cap_row[cap >= 0] = inverse
    return _BlockMaterials(
        s=local[links.s[keep]],
        c=c,
        tau=links.tau[keep],
        t=links.t[keep],
        qty=links.qty[keep],
        materials=materials,
        src=src,
        src_c=np.searchsorted(materials, net.src_c[src]),
        cap_row=cap_row,
        caps=caps,
    )


def _solve_block(
    p: _Problem,
    rows: np.ndarray,
    centers: np.ndarray,
    strategy: str,
    costs: SupplyCosts,
    overtime_share: float,
    overtime_cost: np.ndarray,
    backlog: bool = False,
) -> _BlockSolution:
    n, horizon, w = len(rows), len(p.months), len(centers)
    big_n = n * horizon
    demand = p.demand[rows]
    safety = p.safety[rows]
    cost = p.cost[rows][:, None]
    penalty = costs.shortage_rate * p.price[rows][:, None] * np.ones((1, horizon))
    t_index = np.tile(np.arange(horizon), (n, 1))

    i_r = np.arange(big_n).reshape(n, horizon)
    i_inv = i_r + big_n
    i_short = i_r + 2 * big_n
    nxt = 3 * big_n
    chase = strategy == "chase"
    f_pos = np.arange(big_n) if chase else np.flatnonzero(safety.reshape(-1) > QTY_EPS)
    i_f = nxt + np.arange(len(f_pos))
    nxt += len(f_pos)
    i_e = nxt + np.arange(big_n) if chase else np.array([], dtype=int)
    nxt += len(i_e)
    change_rate = costs.change_rate(strategy)
    change_mask = (
        p.manufactured[rows][:, None] & (t_index > p.blocked[rows][:, None])
        if change_rate > 0
        else np.zeros((n, horizon), dtype=bool)
    )
    c_pos = np.flatnonzero(change_mask.reshape(-1))
    # Production change split into increase and decrease: r_t − r_{t−1} = up − down.
    i_up = nxt + np.arange(len(c_pos))
    i_down = i_up + len(c_pos)
    i_c = np.concatenate([i_up, i_down])
    nxt += 2 * len(c_pos)
    i_o = (nxt + np.arange(w * horizon)).reshape(w, horizon)
    nxt += w * horizon
    # materials (joint LP): stock per material × location × month, purchases per option
    mat = _block_materials(p, rows)
    n_mat = 0 if mat is None else len(mat.materials)
    i_mi = (nxt + np.arange(n_mat * horizon)).reshape(n_mat, horizon)
    nxt += n_mat * horizon
    i_q = nxt + np.arange(0 if mat is None else len(mat.src))
    nxt += len(i_q)

    obj = np.zeros(nxt)
    holding = costs.holding_rate * cost * np.ones((1, horizon))
    obj[i_inv.reshape(-1)] = holding.reshape(-1)
    obj[i_short.reshape(-1)] = penalty.reshape(-1)
    ss_cost = (costs.ss_shortfall_share * penalty / horizon).reshape(-1)
    obj[i_f] = ss_cost[f_pos]
    if chase:
        obj[i_e] = (costs.chase_excess_rate * penalty).reshape(-1)
    change_cost = (change_rate * cost * np.ones((1, horizon))).reshape(-1)
    obj[i_up] = change_cost[c_pos]
    obj[i_down] = change_cost[c_pos]
    obj[i_o] = overtime_cost[centers][:, None]
    if mat is not None:
        obj[i_mi] = p.network.hold_cost[mat.materials][:, None]
        obj[i_q] = p.network.src_cost[mat.src]

    upper = np.full(nxt, np.inf)
    can_supply = p.has_source[rows][:, None] & (t_index >= p.blocked[rows][:, None])
    upper[i_r.reshape(-1)] = np.where(can_supply, np.inf, 0.0).reshape(-1)
    if p.max_production is not None:
        upper[i_r.reshape(-1)] = np.minimum(
            upper[i_r.reshape(-1)], p.max_production[rows].reshape(-1)
        )
    # lost sales: at most the month's demand; backlog: at most the demand due so far
    upper[i_short.reshape(-1)] = (np.cumsum(demand, axis=1) if backlog else demand).reshape(-1)
    available = p.available[centers]
    upper[i_o.reshape(-1)] = (overtime_share * available).reshape(-1)
    if mat is not None:
        upper[i_q] = np.where(p.network.src_open[mat.src], np.inf, 0.0)
    bounds = np.column_stack([np.zeros(nxt), upper])

    # Equalities: inventory balance (and, in chase, the split of stock around safety stock).
    bal = np.arange(big_n)
    prev = bal.reshape(n, horizon)[:, 1:].reshape(-1)  # balance rows of months t ≥ 1
    eq_rows = [bal, bal, bal, prev]
    eq_cols = [i_inv.reshape(-1), i_r.reshape(-1), i_short.reshape(-1), i_inv[:, :-1].reshape(-1)]
    eq_vals = [np.ones(big_n), -np.ones(big_n), -np.ones(big_n), -np.ones(len(prev))]
    if backlog:
        # last month's backlog is due again this month: + b[t−1] in the balance of t
        eq_rows.append(prev)
        eq_cols.append(i_short[:, :-1].reshape(-1))
        eq_vals.append(np.ones(len(prev)))
    b_eq = (p.open_receipts[rows] - demand).astype(float)
    b_eq[:, 0] += p.on_hand[rows]
    b_eq = b_eq.reshape(-1)
    if chase:
        ss_rows = big_n + np.arange(big_n)
        eq_rows += [ss_rows, ss_rows, ss_rows]
        eq_cols += [i_inv.reshape(-1), i_f, i_e]
        eq_vals += [np.ones(big_n), np.ones(big_n), -np.ones(big_n)]
        b_eq = np.concatenate([b_eq, safety.reshape(-1)])
    if len(c_pos):
        here = i_r.reshape(-1)[c_pos]
        change_rows = len(b_eq) + np.arange(len(c_pos))
        ones = np.ones(len(c_pos))
        eq_rows += [change_rows] * 4
        eq_cols += [here, here - 1, i_up, i_down]
        eq_vals += [ones, -ones, -ones, ones]
        b_eq = np.concatenate([b_eq, np.zeros(len(c_pos))])
    if mat is not None:
        # material balance: I[c,t] − I[c,t−1] − Σ q[c,t] + Σ qty × r[s,τ] = receipts (+ on hand)
        first = len(b_eq)
        mat_row = first + np.arange(n_mat * horizon).reshape(n_mat, horizon)
        eq_rows += [mat_row.reshape(-1), mat_row[:, 1:].reshape(-1)]
        eq_cols += [i_mi.reshape(-1), i_mi[:, :-1].reshape(-1)]
        eq_vals += [np.ones(n_mat * horizon), -np.ones(n_mat * (horizon - 1))]
        eq_rows += [mat_row[mat.src_c, p.network.src_t[mat.src]], mat_row[mat.c, mat.t]]
        eq_cols += [i_q, i_r[mat.s, mat.tau]]
        eq_vals += [-np.ones(len(i_q)), mat.qty]
        rhs = p.network.receipts[mat.materials].astype(float)
        rhs[:, 0] += p.network.on_hand[mat.materials]
        b_eq = np.concatenate([b_eq, rhs.reshape(-1)])
    a_eq = sparse.csr_matrix(
        (np.concatenate(eq_vals), (np.concatenate(eq_rows), np.concatenate(eq_cols))),
        shape=(len(b_eq), nxt),
    )

    # Inequalities: safety stock (mixed/level), production change, capacity.
    ub_rows, ub_cols, ub_vals, b_ub = [], [], [], []
    n_ub = 0
    if not chase and len(f_pos):
        k = n_ub + np.arange(len(f_pos))
        ub_rows += [k, k]
        ub_cols += [i_inv.reshape(-1)[f_pos], i_f]
        ub_vals += [-np.ones(len(f_pos)), -np.ones(len(f_pos))]
        b_ub.append(-safety.reshape(-1)[f_pos])
        n_ub += len(f_pos)
    cap_start = n_ub
    if w:
        sub = p.route[rows][:, centers].tocoo()
        local_t = np.arange(horizon)
        cap_row = cap_start + (sub.col[:, None] * horizon + local_t[None, :])
        ub_rows += [cap_row.reshape(-1), cap_start + np.arange(w * horizon)]
        ub_cols += [i_r[sub.row].reshape(-1), i_o.reshape(-1)]
        ub_vals += [np.repeat(sub.data, horizon), -np.ones(w * horizon)]
        # firm hours use the calendar first, then the overtime (never below −overtime)
        b_ub.append(
            np.maximum(available - p.open_hours[centers], -overtime_share * available).reshape(-1)
        )
        n_ub += w * horizon
    if mat is not None and len(mat.caps):
        # supplier capacity: Σ purchases over the material's locations ≤ max_qty
        limited = np.flatnonzero(mat.cap_row >= 0)
        ub_rows.append(n_ub + mat.cap_row[limited])
        ub_cols.append(i_q[limited])
        ub_vals.append(np.ones(len(limited)))
        b_ub.append(p.network.cap_limit[mat.caps])
        n_ub += len(mat.caps)
    a_ub = b_vec = None
    if n_ub:
        a_ub = sparse.csr_matrix(
            (np.concatenate(ub_vals), (np.concatenate(ub_rows), np.concatenate(ub_cols))),
            shape=(n_ub, nxt),
        )
        b_vec = np.concatenate(b_ub)

    # unmet demand first, then the costs: a loss of capacity or material can then never
    # plan less unmet demand (its feasible set is smaller), whatever it does to the costs
    first = np.zeros(nxt)
    first[i_short.reshape(-1)] = obj[i_short.reshape(-1)]
    if chase:
        # chase is defined by this trade: stock above safety stock costs more than a short
        first[i_e] = obj[i_e]
    x, row_dual = _highs(
        obj,
        bounds,
        a_ub,
        b_vec,
        a_eq,
        b_eq,
        f"{n} series and {w} work centers",
        first=first,
        # with materials the dual simplex needed 4× the CPU of the interior point method
        # (with crossover: the same vertex plan) on 1,000 series
        options={"solver": "ipm"} if mat is not None else None,
    )
    shadow = np.zeros((w, horizon))
    if w:
        # A binding ≤ row has a non-positive dual when minimizing: the saving per extra hour is −dual.
        shadow = -row_dual[cap_start : cap_start + w * horizon].reshape(w, horizon)
    terms = {
        "shortage_cost": float(obj[i_short.reshape(-1)] @ x[i_short.reshape(-1)]),
        "holding_cost": float(obj[i_inv.reshape(-1)] @ x[i_inv.reshape(-1)]),
        "safety_stock_shortfall_cost": float(obj[i_f] @ x[i_f]),
        "excess_stock_cost": float(obj[i_e] @ x[i_e]) if chase else 0.0,
        "production_change_cost": float(obj[i_c] @ x[i_c]),
        "overtime_cost": float(obj[i_o.reshape(-1)] @ x[i_o.reshape(-1)]),
    }
    if mat is not None:
        terms["material_holding_cost"] = float(obj[i_mi.reshape(-1)] @ x[i_mi.reshape(-1)])
        terms["material_purchase_cost"] = float(obj[i_q] @ x[i_q])
    return _BlockSolution(
        replenish=np.clip(x[i_r], 0.0, None),
        inventory=x[i_inv],
        shortage=x[i_short],
        overtime=np.clip(x[i_o], 0.0, None),
        shadow=np.clip(shadow, 0.0, None),
        terms=terms,
        n_variables=nxt,
        n_constraints=len(b_eq) + n_ub,
    )
