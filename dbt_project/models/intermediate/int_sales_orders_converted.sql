-- Sales order lines (latest extract wins) with the unit price in the base currency, at the
-- rate of the order month: the price is agreed when the order is placed.
with

sales_orders as (

    select * from {{ ref('stg_erp__sales_orders') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates_filled') }}

),

final as (

    select
        sales_orders.*,
        fx_rates.rate_to_base,
        cast(sales_orders.unit_price as double precision) * fx_rates.rate_to_base as unit_price_base
    from sales_orders
    left join fx_rates
        on
            sales_orders.currency = fx_rates.currency
            and cast(date_trunc('month', sales_orders.order_date) as date) = fx_rates.month

)

select * from final
