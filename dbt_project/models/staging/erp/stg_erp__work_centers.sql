with

source as (

    select * from {{ source('erp', 'work_centers') }}
    where {{ latest_snapshot(source('erp', 'work_centers'), var('plan_month')) }}

),

final as (

    select
        work_center_id,
        location_id,
        name as work_center_name,
        hours_per_day,
        efficiency,
        _extract_month as extract_month
    from source

)

select * from final
