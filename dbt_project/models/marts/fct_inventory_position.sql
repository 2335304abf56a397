-- On hand at the latest inventory snapshot on or before the plan month's end, valued at
-- the item's unit cost (base currency), with the quantity-weighted age of the lots.
with

lots as (

    select * from {{ ref('stg_erp__inventory_snapshots') }}

),

items as (

    select * from {{ ref('dim_items') }}

),

latest_lots as (

    select * from lots
    where snapshot_date = (select max(l.snapshot_date) from lots as l)

),

positions as (

    select
        item_id,
        location_id,
        snapshot_date,
        -- an exact DECIMAL sum of the lots, cast to DOUBLE once below
        sum(qty_on_hand) as on_hand_qty,
        sum(cast(qty_on_hand as double precision) * (snapshot_date - receipt_date)) as qty_age_days
    from latest_lots
    group by item_id, location_id, snapshot_date

),

final as (

    select
        cast(positions.item_id as varchar) as item_id,
        cast(positions.location_id as varchar) as location_id,
        cast(positions.snapshot_date as date) as snapshot_date,
        cast(positions.on_hand_qty as double precision) as on_hand_qty,
        cast(positions.on_hand_qty * items.unit_cost as double precision) as inventory_value,
        cast(
            case when positions.on_hand_qty > 0 then positions.qty_age_days / positions.on_hand_qty end
            as double precision
        ) as avg_age_days
    from positions
    left join items
        on positions.item_id = items.item_id

)

select * from final
