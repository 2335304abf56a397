-- Items with prices in the base currency (rate of the plan month), whether they are
-- bought in (no routing) or made, and the main supplier of a bought-in item (the supplier
-- of its latest purchase order; scenarios' supplier_delay lever works on it).
with

items as (

    select * from {{ ref('stg_erp__items') }}

),

routings as (

    select * from {{ ref('stg_erp__routings') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates_filled') }}
    where month = cast('{{ var("plan_month") }}-01' as date)

),

purchase_orders as (

    select * from {{ ref('stg_erp__purchase_orders') }}

),

made_items as (

    select distinct item_id from routings

),

ranked_suppliers as (

    -- latest order date wins; po_id breaks ties so the result is deterministic
    select
        item_id,
        supplier_id,
        row_number() over (
            partition by item_id order by order_date desc, po_id desc
        ) as supplier_rank
    from purchase_orders
    where supplier_id is not null

),

main_suppliers as (

    select
        item_id,
        supplier_id
    from ranked_suppliers
    where supplier_rank = 1

),

final as (

    select
        cast(items.item_id as varchar) as item_id,
        cast(items.description as varchar) as description,
        cast(items.family as varchar) as family,
        cast(items.category as varchar) as category,
        cast(items.uom as varchar) as uom,
        cast(items.unit_cost as double precision) * fx_rates.rate_to_base as unit_cost,
        cast(items.unit_price as double precision) * fx_rates.rate_to_base as unit_price,
        cast(items.currency as varchar) as currency,
        cast(items.lifecycle_status as varchar) as lifecycle_status,
        cast(items.launch_date as date) as launch_date,
        cast(items.eol_date as date) as eol_date,
        cast(items.lead_time_days as integer) as lead_time_days,
        cast(items.min_lot_qty as double precision) as min_lot_qty,
        made_items.item_id is null as is_purchased,
        -- made items have no supplier even if an old purchase order exists
        cast(
            case when made_items.item_id is null then main_suppliers.supplier_id end as varchar
        ) as supplier_id
    from items
    left join fx_rates
        on items.currency = fx_rates.currency
    left join made_items
        on items.item_id = made_items.item_id
    left join main_suppliers
        on items.item_id = main_suppliers.item_id

)

select * from final
