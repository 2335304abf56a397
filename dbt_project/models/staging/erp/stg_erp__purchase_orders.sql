with

source as (

    select * from {{ source('erp', 'purchase_orders') }}
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
    {{ latest_extract_wins(['po_id']) }}

)

select * from final
