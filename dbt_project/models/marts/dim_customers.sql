with

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

final as (

    select
        cast(customer_id as varchar) as customer_id,
        cast(customer_name as varchar) as customer_name,
        cast(segment as varchar) as segment,
        cast(region as varchar) as region,
        cast(channel as varchar) as channel
    from customers

)

select * from final
