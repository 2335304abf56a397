-- Sales order lines as known at the plan month's close (latest extract wins), prices in
-- the base currency.
with

sales_orders as (

    select * from {{ ref('int_sales_orders_converted') }}

),

final as (

    select
        cast(order_id as varchar) as order_id,
        cast(line_no as bigint) as line_no,
        cast(customer_id as varchar) as customer_id,
        cast(item_id as varchar) as item_id,
        cast(location_id as varchar) as location_id,
        cast(order_date as date) as order_date,
        cast(requested_date as date) as requested_date,
        cast(ship_date as date) as ship_date,
        cast(qty_ordered as double precision) as qty_ordered,
        cast(qty_shipped as double precision) as qty_shipped,
        cast(unit_price_base as double precision) as unit_price_base,
        cast(status as varchar) as status
    from sales_orders

)

select * from final
