"""Materials in the supply plan: bills of material, dependent demand, supplier capacity.

The capacity LP (``supply.plan_supply``) plans what the work centers can make. Whether the
materials for it can be bought is a second linear program, solved here with
``scipy.optimize.linprog(method="highs")``:

- the exploded BOM (``fct_bom_exploded``, leaves only: purchased materials) turns planned
  production of a made item in month τ into dependent demand of each material in month
  ``τ − lead_time_offset_months`` (the made levels above the material need that long;
  production in the first months whose material was due before the horizon has it already);
- variables: production kept ``x ≤ planned production`` per made item × location × month,
  purchases ``q`` per supplier × material × location × month, material stock ``I ≥ 0``;
- balance ``I_t = I_{t−1} + open purchase orders_t + Σ_s q_t − Σ qty_per × x`` per material
  × location (``I_{−1}`` = on hand);
- supplier capacity ``Σ_locations q ≤ max_qty`` per supplier × material × month
  (``fct_supplier_capacity``; no stated limit, no constraint); no receipt from a supplier in
  the first ``ceil(lead_time_days / 30)`` months; a material with no supplier row is bought
  without limit after its item lead time;
- objective: a unit of production not made costs the parent's lost-sale penalty (as in the
  capacity LP) plus its material cost, so the LP cuts production only where no material
  can be had; then purchase cost and holding cost of material stock.

:func:`plan_supply_review` (safety stock, then :func:`plan_supply_with_materials`) is what the
supply asset and every scenario plan. :func:`plan_supply_with_materials` is the supply plan with materials: capacity LP → material
LP → when production had to be cut, the capacity LP again with the kept production as an
upper bound per item × month (the capacity LP may still move volume of other items into
the freed hours) → the material LP once more on the final plan, which gives the published
``plan_materials``. Cutting production only ever lowers material use, so the second plan
is material-feasible. Shortages caused by a cut are explained with the binding material
and supplier (``constraint_type = 'material'``). With no BOM the capacity LP runs once,
unchanged. See ``docs/supply_and_finance.md``.

Modules: ``constants``, ``explosion`` (the BOM explosion), ``network`` (what the material
LPs share), ``lp`` (the material LP), ``joint`` (the supply plan with materials, the joint
LP's network), ``checks`` (checks and exceptions on the material plan).
"""

from sop_pipeline.planning.materials.checks import (
    check_materials,
    material_exceptions,
    with_material_exceptions,
)
from sop_pipeline.planning.materials.constants import (
    EXPLODED_COLUMNS,
    MATERIAL_CUT_COLUMNS,
    MAX_LEVELS,
    OPEN_END,
    OPEN_START,
    PLAN_MATERIALS_COLUMNS,
    PURCHASE_TIE_BREAK,
    SHADOW_EPS,
)
from sop_pipeline.planning.materials.explosion import (
    explode_bom,
    leaf_requirements,
)
from sop_pipeline.planning.materials.joint import (
    material_items,
    material_network,
    plan_supply_review,
    plan_supply_with_materials,
)
from sop_pipeline.planning.materials.lp import (
    plan_materials,
)
from sop_pipeline.planning.materials.network import (
    MaterialPlan,
)

__all__ = [
    "EXPLODED_COLUMNS",
    "MATERIAL_CUT_COLUMNS",
    "MAX_LEVELS",
    "OPEN_END",
    "OPEN_START",
    "PLAN_MATERIALS_COLUMNS",
    "PURCHASE_TIE_BREAK",
    "SHADOW_EPS",
    "MaterialPlan",
    "check_materials",
    "explode_bom",
    "leaf_requirements",
    "material_exceptions",
    "material_items",
    "material_network",
    "plan_materials",
    "plan_supply_review",
    "plan_supply_with_materials",
    "with_material_exceptions",
]
