with

locations as (

    select * from {{ ref('stg_erp__locations') }}

),

final as (

    select
        cast(location_id as varchar) as location_id,
        cast(location_name as varchar) as location_name,
        cast(location_type as varchar) as location_type,
        cast(region as varchar) as region
    from locations

)

select * from final
