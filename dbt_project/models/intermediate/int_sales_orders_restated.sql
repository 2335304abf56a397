-- Restatements: a line whose key came in an earlier extract month with different values.
-- One row per restatement event (order line x extract month that changed it).
with

versions as (

    select * from {{ ref('stg_erp__sales_order_versions') }}

),

compared as (

    select
        *,
        lag(extract_month) over line_history as previous_extract_month,
        lag(qty_ordered) over line_history as previous_qty_ordered,
        lag(qty_shipped) over line_history as previous_qty_shipped,
        lag(status) over line_history as previous_status,
        lag(
            struct_pack(
                order_date, requested_date, ship_date, customer_id, item_id, location_id,
                qty_ordered, qty_shipped, unit_price, currency, status
            )
        ) over line_history as previous_values,
        struct_pack(
            order_date, requested_date, ship_date, customer_id, item_id, location_id,
            qty_ordered, qty_shipped, unit_price, currency, status
        ) as current_values
    from versions
    window line_history as (partition by order_id, line_no order by extract_month)

),

final as (

    select
        order_id,
        line_no,
        item_id,
        location_id,
        previous_extract_month,
        extract_month as restated_extract_month,
        previous_qty_ordered,
        qty_ordered as restated_qty_ordered,
        previous_qty_shipped,
        qty_shipped as restated_qty_shipped,
        previous_status,
        status as restated_status
    from compared
    where
        previous_extract_month is not null
        and previous_values is distinct from current_values

)

select * from final
