-- Every demand series runs up to the plan month (zero-filled), so the forecast sees the
-- latest months as zeros rather than as missing. Returns series that stop early.
select
    item_id,
    location_id,
    max(month) as last_month
from {{ ref('fct_demand_history') }}
group by item_id, location_id
having max(month) <> cast('{{ var("plan_month") }}-01' as date)
