with

source as (

    select * from {{ source('planning', 'aop_targets') }}
    where {{ latest_snapshot(source('planning', 'aop_targets'), var('plan_month')) }}

),

final as (

    select
        family,
        cast(date_trunc('month', month) as date) as month,
        revenue_target,
        volume_target,
        inventory_value_target,
        _extract_month as extract_month
    from source

)

select * from final
