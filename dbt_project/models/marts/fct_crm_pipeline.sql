-- Open opportunities (stage not closed_*), family taken from the item when one is given,
-- amount in the base currency at the rate of the close month.
with

opportunities as (

    select * from {{ ref('stg_crm__opportunities') }}

),

items as (

    select * from {{ ref('dim_items') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates_filled') }}

),

final as (

    select
        cast(opportunities.opportunity_id as varchar) as opportunity_id,
        cast(opportunities.customer_id as varchar) as customer_id,
        cast(opportunities.item_id as varchar) as item_id,
        cast(coalesce(items.family, opportunities.family) as varchar) as family,
        cast(opportunities.expected_qty as double precision) as expected_qty,
        cast(opportunities.amount as double precision) * fx_rates.rate_to_base as amount,
        cast(opportunities.stage as varchar) as stage,
        cast(opportunities.probability as double precision) as probability,
        cast(date_trunc('month', opportunities.expected_close_date) as date) as close_month
    from opportunities
    left join items
        on opportunities.item_id = items.item_id
    left join fx_rates
        on
            opportunities.currency = fx_rates.currency
            and cast(date_trunc('month', opportunities.expected_close_date) as date) = fx_rates.month
    where opportunities.stage not like 'closed%'

)

select * from final
