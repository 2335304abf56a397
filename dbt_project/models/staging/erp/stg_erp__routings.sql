with

source as (

    select * from {{ source('erp', 'routings') }}
    where {{ latest_snapshot(source('erp', 'routings'), var('plan_month')) }}

),

final as (

    select
        item_id,
        work_center_id,
        hours_per_unit,
        _extract_month as extract_month
    from source

)

select * from final
