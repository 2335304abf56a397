with

source as (

    select * from {{ source('erp', 'capacity_calendar') }}
    where {{ latest_snapshot(source('erp', 'capacity_calendar'), var('plan_month')) }}

),

final as (

    select
        work_center_id,
        cast(date_trunc('month', month) as date) as month,
        available_hours,
        crew_hours,
        _extract_month as extract_month
    from source

)

select * from final
