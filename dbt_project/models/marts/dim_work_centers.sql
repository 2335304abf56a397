with

work_centers as (

    select * from {{ ref('stg_erp__work_centers') }}

),

final as (

    select
        cast(work_center_id as varchar) as work_center_id,
        cast(location_id as varchar) as location_id,
        cast(work_center_name as varchar) as work_center_name,
        cast(hours_per_day as double precision) as hours_per_day,
        cast(efficiency as double precision) as efficiency
    from work_centers

)

select * from final
