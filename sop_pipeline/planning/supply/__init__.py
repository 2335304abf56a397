"""The constrained supply plan: a linear program solved with HiGHS (item × location × month).

Model (see ``docs/supply_and_finance.md`` for the full statement and the costs):

- variables per series × month: replenishment ``r`` (production for items with a routing,
  purchase otherwise), ending inventory ``I``, shortage ``b`` (lost sales: unserved demand
  of the month; backlog: the backlog open at month end), safety-stock shortfall ``f``; per manufactured series × month the
  production change ``c ≥ |r_t − r_{t−1}|``; in *chase* the stock above safety stock ``e``;
  per work center × month overtime hours ``o ≤ overtime_share × available``;
- balance ``I_t = I_{t−1} + open receipts_t + r_t − (demand_t − b_t)`` (lost sales) or
  ``− (demand_t + b_{t−1} − b_t)`` (backlog), ``I_{−1}`` = on hand;
- capacity ``Σ hours_per_unit × r − o ≤ available − firm hours`` (firm hours: open production
  orders; they use the calendar and then the overtime first, so the LP's own hours plus the
  firm hours stay within available + overtime unless the firm hours alone exceed it);
- lead time: ``r = 0`` in the first ``ceil(lead_time_days / 30)`` months (purchased items,
  and manufactured items whose lead time exceeds a month); items with no routing and no
  lead time (no supplier) cannot be replenished;
- min lots are applied after the LP by cumulative rounding up to ``min_lot_qty`` multiples
  where the capacity left allows (else one lot earlier, else a part lot), never behind the
  LP's cumulative quantity (see :func:`lots._round_to_lots`).

The LP decomposes into independent blocks: series linked through shared work centers form
one connected component, purchased series are independent. Components are packed into LPs
of at most ``max_series_per_lp`` series (a bigger component stays whole), which keeps the
solve near-linear in the number of series.

The package, one module per part (each imports only the ones listed before it):

- ``model``: published columns, tolerances, ``SupplyPlanError``, ``SupplyCosts``,
  ``SupplyResult``, ``MaterialNetwork`` and the internal ``_Problem``;
- ``lots``: min lots after the LP (``_round_to_lots``) and the materials' cap on them;
- ``assembly``: the marts → ``_Problem``, the overtime cost, the LP blocks;
- ``aggregate``: aggregate planning of large capacity-linked components;
- ``lp``: one block's LP and its HiGHS solve (``_HIGHS_OPTIONS``);
- ``explain``: the binding constraint of each shortage;
- ``plan``: the entry point ``plan_supply``.
"""

from sop_pipeline.planning.supply.model import (
    PLAN_SUPPLY_COLUMNS,
    QTY_EPS,
    SHADOW_EPS,
    MaterialNetwork,
    SupplyCosts,
    SupplyPlanError,
    SupplyResult,
)
from sop_pipeline.planning.supply.plan import plan_supply

__all__ = [
    "PLAN_SUPPLY_COLUMNS",
    "QTY_EPS",
    "SHADOW_EPS",
    "MaterialNetwork",
    "SupplyCosts",
    "SupplyPlanError",
    "SupplyResult",
    "plan_supply",
]
