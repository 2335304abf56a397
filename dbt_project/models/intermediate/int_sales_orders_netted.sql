-- Demand netting per order line: what was ordered, cancelled, returned and shipped, and the
-- net demand (ordered - cancelled - returned) in the requested month.
-- Returns come as their own lines with a negative quantity and status 'returned'; they
-- count as a positive returned_qty (and no order or shipment) in their requested month.
-- A cancelled line cancels what was not shipped.
with

sales_orders as (

    select * from {{ ref('int_sales_orders_converted') }}

),

quantities as (

    select
        order_id,
        line_no,
        item_id,
        location_id,
        customer_id,
        status,
        unit_price_base,
        cast(date_trunc('month', requested_date) as date) as requested_month,
        -- quantities stay DECIMAL(18,6), so monthly sums are exact (marts cast once, at the
        -- end); the explicit type keeps the scale the same on DuckDB and PostgreSQL
        cast(
            case
                when status = 'returned' then 0
                else qty_ordered
            end as decimal(18, 6)
        ) as ordered_qty,
        cast(
            case
                when status = 'cancelled'
                    then greatest(qty_ordered - coalesce(qty_shipped, 0), 0)
                else 0
            end as decimal(18, 6)
        ) as cancelled_qty,
        cast(
            case
                when status = 'returned' then abs(qty_ordered)
                else 0
            end as decimal(18, 6)
        ) as returned_qty,
        cast(
            case
                when status = 'returned' then 0
                else coalesce(qty_shipped, 0)
            end as decimal(18, 6)
        ) as shipped_qty
    from sales_orders

),

final as (

    select
        *,
        cast(ordered_qty - cancelled_qty - returned_qty as decimal(18, 6)) as demand_qty,
        (ordered_qty - cancelled_qty - returned_qty) * unit_price_base as demand_revenue
    from quantities

)

select * from final
