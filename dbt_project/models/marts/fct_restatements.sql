-- Restated order lines of the plan-month view, for reporting: the line as first extracted
-- against the line as the plan month sees it, how often and what changed.
with

restatements as (

    select * from {{ ref('int_sales_orders_restated') }}

),

versions as (

    select * from {{ ref('stg_erp__sales_order_versions') }}

),

current_lines as (

    select * from {{ ref('stg_erp__sales_orders') }}

),

ranked_versions as (

    select
        *,
        row_number() over (partition by order_id, line_no order by extract_month) as version_rank
    from versions

),

first_versions as (

    select
        order_id,
        line_no,
        extract_month as first_extract_month,
        qty_ordered as first_qty_ordered,
        status as first_status
    from ranked_versions
    where version_rank = 1

),

per_line as (

    select
        order_id,
        line_no,
        count(*) as restatement_count,
        max(restated_extract_month) as restated_extract_month,
        string_agg(changed_columns, '; ' order by restated_extract_month) as changed_columns
    from restatements
    group by order_id, line_no

),

final as (

    select
        cast(per_line.order_id as varchar) as order_id,
        cast(per_line.line_no as bigint) as line_no,
        cast(current_lines.item_id as varchar) as item_id,
        cast(current_lines.location_id as varchar) as location_id,
        cast(first_versions.first_extract_month as varchar) as first_extract_month,
        cast(per_line.restated_extract_month as varchar) as restated_extract_month,
        cast(per_line.restatement_count as bigint) as restatement_count,
        cast(first_versions.first_qty_ordered as double precision) as first_qty_ordered,
        cast(current_lines.qty_ordered as double precision) as restated_qty_ordered,
        cast(current_lines.qty_ordered as double precision) - cast(first_versions.first_qty_ordered as double precision)
            as qty_change,
        cast(first_versions.first_status as varchar) as first_status,
        cast(current_lines.status as varchar) as restated_status,
        cast(per_line.changed_columns as varchar) as changed_columns
    from per_line
    inner join first_versions
        on
            per_line.order_id = first_versions.order_id
            and per_line.line_no = first_versions.line_no
    inner join current_lines
        on
            per_line.order_id = current_lines.order_id
            and per_line.line_no = current_lines.line_no

)

select * from final
