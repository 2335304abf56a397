with

overrides as (

    select * from {{ ref('int_demand_overrides_parsed') }}

),

final as (

    select
        cast(scope_type as varchar) as scope_type,
        cast(scope_id as varchar) as scope_id,
        cast(month as date) as month,
        cast(adjustment_type as varchar) as adjustment_type,
        cast(adjustment_value as double precision) as adjustment_value,
        cast(reason_code as varchar) as reason_code,
        cast(author as varchar) as author,
        cast(comment as varchar) as comment
    from overrides

)

select * from final
