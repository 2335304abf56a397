-- Sales order lines as known at the plan month's close: the latest extract wins per line.
with

source as (

    select
        *,
        {{ latest_extract_rank(['order_id', 'line_no']) }} as extract_rank
    from {{ source('erp', 'sales_orders') }}
    where _extract_month <= '{{ var("plan_month") }}'

),

final as (

    select
        order_id,
        line_no,
        order_date,
        requested_date,
        ship_date,
        customer_id,
        item_id,
        location_id,
        qty_ordered,
        qty_shipped,
        unit_price,
        upper(currency) as currency,
        status,
        _extract_month as extract_month,
        _source_file as source_file,
        _source_row as source_row
    from source
    where extract_rank = 1

)

select * from final
