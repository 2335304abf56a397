with

source as (

    select
        *,
        {{ latest_extract_rank(['opportunity_id']) }} as extract_rank
    from {{ source('crm', 'opportunities') }}
    where _extract_month <= '{{ var("plan_month") }}'

),

final as (

    select
        opportunity_id,
        customer_id,
        nullif(trim(item_id), '') as item_id,
        nullif(trim(family), '') as family,
        expected_qty,
        amount,
        upper(currency) as currency,
        stage,
        probability,
        expected_close_date,
        _extract_month as extract_month
    from source
    where extract_rank = 1

)

select * from final
