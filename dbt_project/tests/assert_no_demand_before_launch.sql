-- Demand history never starts before an item's launch month (no invented zeros, and
-- pre-orders count in the launch month). Returns the offending rows.
-- meta.dagster.ref: dagster-dbt attaches this two-parent test to fct_demand_history.
{{ config(meta={'dagster': {'ref': {'name': 'fct_demand_history'}}}) }}

select
    history.item_id,
    history.location_id,
    history.month,
    items.launch_date
from {{ ref('fct_demand_history') }} as history
inner join {{ ref('dim_items') }} as items
    on history.item_id = items.item_id
where history.month < cast(date_trunc('month', items.launch_date) as date)
