with

routings as (

    select * from {{ ref('stg_erp__routings') }}

),

final as (

    select
        cast(item_id as varchar) as item_id,
        cast(work_center_id as varchar) as work_center_id,
        cast(hours_per_unit as double precision) as hours_per_unit
    from routings

)

select * from final
