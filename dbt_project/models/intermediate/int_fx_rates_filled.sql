-- One rate_to_base per currency and month, for every month an amount may need converting.
-- A month without a rate uses the latest earlier rate; before a currency's first rate, its
-- first rate; the base currency is 1. A currency that never has a rate stays null (the
-- not_null test stops the build: revenue in an unknown currency cannot be converted).
with

fx_rates as (

    select * from {{ ref('stg_erp__fx_rates') }}

),

sales_orders as (

    select * from {{ ref('stg_erp__sales_orders') }}

),

items as (

    select * from {{ ref('stg_erp__items') }}

),

opportunities as (

    select * from {{ ref('stg_crm__opportunities') }}

),

currencies as (

    select '{{ var("base_currency") }}' as currency
    union
    select currency from fx_rates
    union
    select currency from sales_orders
    union
    select currency from items
    union
    select currency from opportunities

),

bounds as (

    select
        least(
            -- the plan month's rate prices the item master
            cast('{{ var("plan_month") }}-01' as date),
            coalesce((select min(fx.month) from fx_rates as fx), cast('{{ var("horizon_start") }}' as date)),
            coalesce(
                (select cast(min(date_trunc('month', so.order_date)) as date) from sales_orders as so),
                cast('{{ var("horizon_start") }}' as date)
            ),
            coalesce(
                (select cast(min(date_trunc('month', op.expected_close_date)) as date) from opportunities as op),
                cast('{{ var("horizon_start") }}' as date)
            )
        ) as first_month,
        greatest(
            coalesce((select max(fx.month) from fx_rates as fx), cast('{{ var("horizon_end") }}' as date)),
            coalesce(
                (select cast(max(date_trunc('month', op.expected_close_date)) as date) from opportunities as op),
                cast('{{ var("horizon_end") }}' as date)
            ),
            cast('{{ var("horizon_end") }}' as date)
        ) as last_month

),

spine as (

    select {{ month_series('first_month', 'last_month') }} as spine_month
    from bounds

),

months as (

    select cast(spine_month as date) as month
    from spine

),

grid as (

    select
        currencies.currency,
        months.month
    from currencies
    cross join months

),

quoted as (

    select
        grid.currency,
        grid.month,
        fx_rates.rate_to_base as quoted_rate,
        -- quoted months so far: a quoted month and the unquoted months after it share a count
        count(fx_rates.rate_to_base) over (
            partition by grid.currency
            order by grid.month
            rows between unbounded preceding and current row
        ) as quotes_so_far
    from grid
    left join fx_rates
        on
            grid.currency = fx_rates.currency
            and grid.month = fx_rates.month

),

filled as (

    -- (`ignore nulls` in last_value/first_value is not portable: same result, plain SQL)
    select
        currency,
        month,
        quoted_rate,
        -- the latest quote up to the month: the one quote of its quotes_so_far group
        max(quoted_rate) over (partition by currency, quotes_so_far) as carried_rate,
        -- the earliest quote: quoted months first, then by month
        first_value(quoted_rate) over (
            partition by currency
            order by case when quoted_rate is null then 1 else 0 end, month
            rows between unbounded preceding and unbounded following
        ) as first_rate
    from quoted

),

final as (

    select
        currency,
        month,
        cast(
            case
                when currency = '{{ var("base_currency") }}' then 1
                else coalesce(carried_rate, first_rate)
            end as double precision
        ) as rate_to_base,
        quoted_rate is not null or currency = '{{ var("base_currency") }}' as is_quoted
    from filled

)

select * from final
