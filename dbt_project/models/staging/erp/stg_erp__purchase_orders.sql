with

source as (

    select
        *,
        {{ latest_extract_rank(['po_id']) }} as extract_rank
    from {{ source('erp', 'purchase_orders') }}
    where _extract_month <= '{{ var("plan_month") }}'

),

final as (

    select
        po_id,
        item_id,
        location_id,
        supplier_id,
        qty_ordered,
        qty_received,
        order_date,
        due_date,
        received_date,
        status,
        _extract_month as extract_month
    from source
    where extract_rank = 1

)

select * from final
