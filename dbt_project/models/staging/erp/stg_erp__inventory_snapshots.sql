-- On-hand lots of every snapshot the plan month may see (snapshot dates up to its close).
-- Each extract month carries its own snapshot date, so all months are kept for history;
-- a re-sent snapshot date is taken from the latest extract.
with

source as (

    select
        *,
        {{ latest_extract_rank(['snapshot_date', 'item_id', 'location_id', 'lot_id']) }} as extract_rank
    from {{ source('erp', 'inventory') }}
    where
        _extract_month <= '{{ var("plan_month") }}'
        and snapshot_date < cast('{{ var("actuals_end") }}' as date)

),

final as (

    select
        snapshot_date,
        item_id,
        location_id,
        lot_id,
        receipt_date,
        qty_on_hand,
        _extract_month as extract_month
    from source
    where extract_rank = 1

)

select * from final
