-- Restatements: a line whose key came in an earlier extract month with different
-- commercial values (what, where, for whom, how many, at what price, for when). Progress of
-- an order (status, shipped quantity, ship date) is an update, not a restatement.
-- One row per restatement event (order line x extract month that changed it).
with

versions as (

    select * from {{ ref('stg_erp__sales_order_versions') }}

),

compared as (

    select
        *,
        lag(extract_month) over line_history as previous_extract_month,
        lag(order_date) over line_history as previous_order_date,
        lag(requested_date) over line_history as previous_requested_date,
        lag(customer_id) over line_history as previous_customer_id,
        lag(item_id) over line_history as previous_item_id,
        lag(location_id) over line_history as previous_location_id,
        lag(qty_ordered) over line_history as previous_qty_ordered,
        lag(unit_price) over line_history as previous_unit_price,
        lag(currency) over line_history as previous_currency,
        lag(status) over line_history as previous_status
    from versions
    window line_history as (partition by order_id, line_no order by extract_month)

),

changes as (

    select
        *,
        concat_ws(
            ', ',
            case when order_date is distinct from previous_order_date then 'order_date' end,
            case when requested_date is distinct from previous_requested_date then 'requested_date' end,
            case when customer_id is distinct from previous_customer_id then 'customer_id' end,
            case when item_id is distinct from previous_item_id then 'item_id' end,
            case when location_id is distinct from previous_location_id then 'location_id' end,
            case when qty_ordered is distinct from previous_qty_ordered then 'qty_ordered' end,
            case when unit_price is distinct from previous_unit_price then 'unit_price' end,
            case when currency is distinct from previous_currency then 'currency' end
        ) as changed_columns
    from compared
    where previous_extract_month is not null

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
        previous_status,
        status as restated_status,
        changed_columns
    from changes
    where changed_columns <> ''

)

select * from final
