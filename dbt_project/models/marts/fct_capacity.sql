-- Available hours per work centre and horizon month: the calendar's hours (maintenance,
-- overhauls, holidays), or the nominal hours_per_day x 21 working days x efficiency when
-- the calendar has no row for the month; capped by the crew the calendar can staff
-- (crew_hours, people), when it gives one. Overtime is planned on top, at its price.
with

work_centers as (

    select * from {{ ref('stg_erp__work_centers') }}

),

calendar as (

    select * from {{ ref('stg_erp__capacity_calendars') }}

),

bounds as (

    select
        cast('{{ var("horizon_start") }}' as date) as horizon_start,
        cast('{{ var("horizon_end") }}' as date) as horizon_end

),

horizon as (

    select cast({{ month_series('horizon_start', 'horizon_end') }} as date) as month
    from bounds

),

final as (

    select
        cast(work_centers.work_center_id as varchar) as work_center_id,
        cast(work_centers.location_id as varchar) as location_id,
        cast(horizon.month as date) as month,
        cast(
            case
                when calendar.crew_hours < coalesce(
                    calendar.available_hours,
                    work_centers.hours_per_day * 21 * work_centers.efficiency
                ) then calendar.crew_hours
                else coalesce(
                    calendar.available_hours,
                    work_centers.hours_per_day * 21 * work_centers.efficiency
                )
            end as double precision
        ) as available_hours,
        cast(
            coalesce(
                calendar.available_hours,
                work_centers.hours_per_day * 21 * work_centers.efficiency
            ) as double precision
        ) as machine_hours,
        cast(calendar.crew_hours as double precision) as crew_hours
    from work_centers
    cross join horizon
    left join calendar
        on
            work_centers.work_center_id = calendar.work_center_id
            and horizon.month = calendar.month

)

select * from final
