-- Every version of a sales order line the plan month may see: one per line and extract
-- month (the input of the restatement report; stg_erp__sales_orders keeps the latest).
with

source as (

    select
        *,
        {{ latest_extract_rank(['order_id', 'line_no', '_extract_month']) }} as extract_rank
    from {{ source('erp', 'sales_orders') }}
    where _extract_month <= '{{ var("plan_month") }}'

),

final as (

    select
        order_id,
        line_no,
        _extract_month as extract_month,
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
        status
    from source
    where extract_rank = 1

)

select * from final
