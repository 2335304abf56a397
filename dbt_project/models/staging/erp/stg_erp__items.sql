with

source as (

    select * from {{ source('erp', 'items') }}
    where {{ latest_snapshot(source('erp', 'items'), var('plan_month')) }}

),

final as (

    select
        item_id,
        description,
        family,
        category,
        uom,
        unit_cost,
        unit_price,
        upper(currency) as currency,
        lifecycle_status,
        launch_date,
        eol_date,
        lead_time_days,
        min_lot_qty,
        _extract_month as extract_month
    from source

)

select * from final
