with

production_orders as (

    select * from {{ ref('stg_erp__production_orders') }}

),

final as (

    select
        cast(order_id as varchar) as order_id,
        cast(item_id as varchar) as item_id,
        cast(location_id as varchar) as location_id,
        cast(work_center_id as varchar) as work_center_id,
        cast(qty_planned as double precision) as qty_planned,
        cast(qty_completed as double precision) as qty_completed,
        cast(due_date as date) as due_date,
        cast(completed_date as date) as completed_date,
        cast(status as varchar) as status
    from production_orders

)

select * from final
