with

source as (

    select * from {{ source('erp', 'fx_rates') }}
    where {{ latest_snapshot(source('erp', 'fx_rates'), var('plan_month')) }}

),

final as (

    select
        upper(currency) as currency,
        cast(date_trunc('month', month) as date) as month,
        rate_to_base,
        _extract_month as extract_month
    from source

)

select * from final
