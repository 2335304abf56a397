with

source as (

    select * from {{ source('erp', 'bom') }}
    where {{ latest_snapshot(source('erp', 'bom'), var('plan_month')) }}

),

final as (

    select
        parent_item_id,
        component_item_id,
        qty_per,
        coalesce(scrap_pct, 0) as scrap_pct,
        valid_from,
        valid_to,
        _extract_month as extract_month
    from source

)

select * from final
