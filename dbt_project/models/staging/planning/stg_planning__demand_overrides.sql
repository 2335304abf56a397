with

source as (

    select * from {{ source('planning', 'demand_overrides') }}
    where {{ latest_snapshot(source('planning', 'demand_overrides'), var('plan_month')) }}

),

final as (

    select
        trim(scope) as scope,
        cast(date_trunc('month', month) as date) as month,
        replace(trim(adjustment), ' ', '') as adjustment,
        reason_code,
        author,
        comment,
        _extract_month as extract_month,
        _source_row as source_row
    from source

)

select * from final
