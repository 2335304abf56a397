with

source as (

    select * from {{ source('erp', 'supplier_capacity') }}
    where {{ latest_snapshot(source('erp', 'supplier_capacity'), var('plan_month')) }}

),

final as (

    select
        supplier_id,
        nullif(trim(item_id), '') as item_id,
        nullif(trim(family), '') as family,
        cast(date_trunc('month', month) as date) as month,
        max_qty,
        lead_time_days,
        unit_cost,
        _extract_month as extract_month
    from source

)

select * from final
