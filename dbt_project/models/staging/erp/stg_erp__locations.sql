with

source as (

    select * from {{ source('erp', 'locations') }}
    where {{ latest_snapshot(source('erp', 'locations'), var('plan_month')) }}

),

final as (

    select
        location_id,
        name as location_name,
        type as location_type,
        region,
        _extract_month as extract_month
    from source

)

select * from final
