with

aop_targets as (

    select * from {{ ref('stg_planning__aop_targets') }}

),

final as (

    select
        cast(family as varchar) as family,
        cast(month as date) as month,
        cast(revenue_target as double precision) as revenue_target,
        cast(volume_target as double precision) as volume_target,
        cast(inventory_value_target as double precision) as inventory_value_target
    from aop_targets

)

select * from final
