with

source as (

    select * from {{ source('crm', 'customers') }}
    where {{ latest_snapshot(source('crm', 'customers'), var('plan_month')) }}

),

final as (

    select
        customer_id,
        name as customer_name,
        segment,
        region,
        channel,
        _extract_month as extract_month
    from source

)

select * from final
