-- Month-end stock per item x location: the last snapshot of each month up to the plan
-- month, valued at today's unit cost (base currency).
with

lots as (

    select * from {{ ref('stg_erp__inventory_snapshots') }}

),

items as (

    select * from {{ ref('dim_items') }}

),

month_end_snapshots as (

    select
        cast(date_trunc('month', snapshot_date) as date) as month,
        max(snapshot_date) as snapshot_date
    from lots
    group by cast(date_trunc('month', snapshot_date) as date)

),

positions as (

    select
        lots.item_id,
        lots.location_id,
        month_end_snapshots.month,
        sum(cast(lots.qty_on_hand as double precision)) as on_hand_qty
    from lots
    inner join month_end_snapshots
        on lots.snapshot_date = month_end_snapshots.snapshot_date
    group by lots.item_id, lots.location_id, month_end_snapshots.month

),

final as (

    select
        cast(positions.item_id as varchar) as item_id,
        cast(positions.location_id as varchar) as location_id,
        cast(positions.month as date) as month,
        cast(positions.on_hand_qty as double precision) as on_hand_qty,
        cast(positions.on_hand_qty * items.unit_cost as double precision) as inventory_value
    from positions
    left join items
        on positions.item_id = items.item_id

)

select * from final
