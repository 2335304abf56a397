with

source as (

    select
        *,
        {{ latest_extract_rank(['order_id']) }} as extract_rank
    from {{ source('erp', 'production_orders') }}
    where _extract_month <= '{{ var("plan_month") }}'

),

final as (

    select
        order_id,
        item_id,
        location_id,
        work_center_id,
        qty_planned,
        qty_completed,
        start_date,
        due_date,
        completed_date,
        status,
        _extract_month as extract_month
    from source
    where extract_rank = 1

)

select * from final
