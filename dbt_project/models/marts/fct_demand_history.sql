-- Monthly demand per item x location by requested month, zero-filled from the series'
-- first month to the plan month. A series starts at its first order month but never before
-- the item's launch month: orders requested before launch (pre-orders) count in the launch
-- month, so no demand is lost and no zero is invented before launch. Requested months after
-- the plan month are the open order book, not history.
with

order_lines as (

    select * from {{ ref('int_sales_orders_netted') }}

),

items as (

    select * from {{ ref('dim_items') }}

),

dated as (

    select
        order_lines.*,
        greatest(
            order_lines.requested_month,
            coalesce(cast(date_trunc('month', items.launch_date) as date), order_lines.requested_month)
        ) as demand_month
    from order_lines
    left join items
        on order_lines.item_id = items.item_id
    where order_lines.requested_month <= cast('{{ var("plan_month") }}-01' as date)

),

monthly as (

    select
        item_id,
        location_id,
        demand_month as month,
        sum(ordered_qty) as ordered_qty,
        sum(cancelled_qty) as cancelled_qty,
        sum(returned_qty) as returned_qty,
        sum(shipped_qty) as shipped_qty,
        sum(demand_qty) as demand_qty,
        sum(demand_revenue) as demand_revenue
    from dated
    group by item_id, location_id, demand_month

),

series as (

    select
        item_id,
        location_id,
        min(month) as first_month,
        cast('{{ var("plan_month") }}-01' as date) as last_month
    from monthly
    group by item_id, location_id

),

spine as (

    select
        item_id,
        location_id,
        {{ month_series('first_month', 'last_month') }} as spine_month
    from series

),

filled as (

    select
        spine.item_id,
        spine.location_id,
        cast(spine.spine_month as date) as month,
        coalesce(monthly.ordered_qty, 0) as ordered_qty,
        coalesce(monthly.cancelled_qty, 0) as cancelled_qty,
        coalesce(monthly.returned_qty, 0) as returned_qty,
        coalesce(monthly.shipped_qty, 0) as shipped_qty,
        coalesce(monthly.demand_qty, 0) as demand_qty,
        coalesce(monthly.demand_revenue, 0) as demand_revenue
    from spine
    left join monthly
        on
            spine.item_id = monthly.item_id
            and spine.location_id = monthly.location_id
            and cast(spine.spine_month as date) = monthly.month

),

final as (

    select
        cast(filled.item_id as varchar) as item_id,
        cast(filled.location_id as varchar) as location_id,
        cast(items.family as varchar) as family,
        cast(filled.month as date) as month,
        cast(filled.ordered_qty as double precision) as ordered_qty,
        cast(filled.cancelled_qty as double precision) as cancelled_qty,
        cast(filled.returned_qty as double precision) as returned_qty,
        cast(filled.shipped_qty as double precision) as shipped_qty,
        cast(filled.demand_qty as double precision) as demand_qty,
        cast(filled.demand_revenue as double precision) as demand_revenue
    from filled
    left join items
        on filled.item_id = items.item_id

)

select * from final
