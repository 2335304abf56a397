"""Reference data of the demo company: product families, locations, work centers, name parts.

Static tables only; ``company.py`` draws the random parts (levels, prices, lifecycles) from
them. Strings here never contain commas or quotes because the CSV files are written
without quoting (a clean file that any reader parses).
"""

from __future__ import annotations

from dataclasses import dataclass

from sop_pipeline.ingest.contract import OVERRIDE_REASON_CODES


@dataclass(frozen=True)
class Family:
    """One product family and how its demand and production behave.

    Attributes:
        name: family name as it appears in ``items.family`` (and in overrides/scenarios).
        code: item id prefix.
        share: share of the item count.
        categories: categories of the family (``items.category``).
        specs: size/spec strings used in item descriptions.
        uom: unit of measure of the family's items.
        price: list price range in USD per unit (log-uniform).
        level: demand range per item per month in units at the last history month
            (log-uniform: a few items sell most, as in any ABC analysis).
        season_peak: calendar month (1-12, may be fractional) of the seasonal peak.
        season_amp: amplitude of the yearly seasonality (0.3 = peak 30% above average).
        season_cycles: 1 for one peak a year, 2 for spring and autumn peaks.
        growth: mean yearly growth of the family's items.
        purchased_share: share of items bought from suppliers (no routing).
        plant: index into ``LOCATIONS`` of the plant that makes the family.
        routing: work centers with an hours-per-unit range, in routing order.
        intermittent: sporadic, lumpy demand (spare parts).
        promo_rate: chance of a promotion per series and month.
        return_rate: chance of a customer return per series and month.
        lead_days: production lead time range in days for manufactured items.
    """

    name: str
    code: str
    share: float
    categories: tuple[str, ...]
    specs: tuple[str, ...]
    uom: str
    price: tuple[float, float]
    level: tuple[float, float]
    season_peak: float
    season_amp: float
    season_cycles: int
    growth: float
    purchased_share: float
    plant: int
    routing: tuple[tuple[str, float, float], ...]
    intermittent: bool = False
    promo_rate: float = 0.01
    return_rate: float = 0.02
    lead_days: tuple[int, int] = (5, 15)


# (location_id, name, type, region)
LOCATIONS: tuple[tuple[str, str, str, str], ...] = (
    ("PLANT-EAST", "East plant - Columbus OH", "plant", "US-East"),
    ("PLANT-WEST", "West plant - Reno NV", "plant", "US-West"),
    ("DC-CENTRAL", "Central distribution center - Kansas City MO", "dc", "US-Central"),
)
DC_INDEX = 2

# (work_center_id, location index, name, efficiency)
WORK_CENTERS: tuple[tuple[str, int, str, float], ...] = (
    ("WC-E-MACH", 0, "CNC machining", 0.85),
    ("WC-E-ASM", 0, "Pump assembly", 0.88),
    ("WC-E-WIND", 0, "Motor winding", 0.82),
    ("WC-E-TEST", 0, "Test and inspection", 0.90),
    ("WC-W-SMT", 1, "Electronics SMT line", 0.87),
    ("WC-W-ASM", 1, "Final assembly", 0.88),
    ("WC-W-MOLD", 1, "Moulding and pressing", 0.84),
    ("WC-W-EXTR", 1, "Hose extrusion", 0.80),
)

FAMILIES: tuple[Family, ...] = (
    Family(
        "pumps", "PMP", 0.12,
        ("centrifugal pumps", "submersible pumps", "dosing pumps"),
        ("0.75 kW", "1.5 kW", "2.2 kW", "4 kW", "7.5 kW", "11 kW"),
        "EA", (350.0, 4200.0), (4.0, 60.0), 6.5, 0.35, 1, 0.04, 0.05, 0,
        (("WC-E-MACH", 0.4, 1.2), ("WC-E-ASM", 1.5, 4.0)),
        promo_rate=0.008, return_rate=0.02, lead_days=(10, 25),
    ),
    Family(
        "valves", "VLV", 0.13,
        ("ball valves", "gate valves", "control valves"),
        ("DN15", "DN25", "DN40", "DN50", "DN80", "DN100"),
        "EA", (35.0, 900.0), (15.0, 220.0), 4.0, 0.15, 2, 0.02, 0.10, 0,
        (("WC-E-MACH", 0.2, 0.8), ("WC-E-TEST", 0.1, 0.3)),
        promo_rate=0.01, return_rate=0.02, lead_days=(7, 20),
    ),
    Family(
        "motors", "MOT", 0.08,
        ("AC motors", "gear motors", "DC motors"),
        ("0.37 kW", "0.75 kW", "1.5 kW", "3 kW", "5.5 kW", "11 kW"),
        "EA", (150.0, 2600.0), (5.0, 80.0), 3.0, 0.08, 1, 0.03, 0.05, 0,
        (("WC-E-WIND", 0.8, 2.5), ("WC-E-TEST", 0.2, 0.5)),
        promo_rate=0.005, return_rate=0.015, lead_days=(10, 25),
    ),
    Family(
        "controllers", "CTL", 0.07,
        ("PLC modules", "variable speed drives", "pump controllers"),
        ("4 I/O", "8 I/O", "16 I/O", "2.2 kW", "7.5 kW", "15 kW"),
        "EA", (180.0, 3200.0), (3.0, 50.0), 11.5, 0.30, 1, 0.08, 0.15, 1,
        (("WC-W-SMT", 0.1, 0.4), ("WC-W-ASM", 0.3, 1.0)),
        promo_rate=0.005, return_rate=0.03, lead_days=(7, 15),
    ),
    Family(
        "sensors", "SEN", 0.10,
        ("pressure sensors", "flow sensors", "level sensors", "temperature sensors"),
        ("0-10 bar", "0-40 bar", "4-20 mA", "0-10 V", "IO-Link", "Modbus"),
        "EA", (25.0, 650.0), (10.0, 160.0), 9.0, 0.12, 1, 0.06, 0.20, 1,
        (("WC-W-SMT", 0.05, 0.2),),
        promo_rate=0.01, return_rate=0.03, lead_days=(5, 12),
    ),
    Family(
        "filters", "FLT", 0.10,
        ("cartridge filters", "bag filters", "strainers"),
        ("1 micron", "5 micron", "10 micron", "25 micron", "50 micron", "100 micron"),
        "EA", (8.0, 220.0), (30.0, 420.0), 4.0, 0.25, 2, 0.01, 0.15, 1,
        (("WC-W-MOLD", 0.03, 0.1), ("WC-W-ASM", 0.05, 0.15)),
        promo_rate=0.02, return_rate=0.02, lead_days=(5, 12),
    ),
    Family(
        "hoses", "HOS", 0.06,
        ("hydraulic hoses", "industrial hoses", "suction hoses"),
        ("DN6", "DN10", "DN19", "DN25", "DN38", "DN50"),
        "M", (2.0, 45.0), (150.0, 2500.0), 6.0, 0.40, 1, 0.0, 0.10, 1,
        (("WC-W-EXTR", 0.01, 0.04),),
        promo_rate=0.015, return_rate=0.02, lead_days=(5, 10),
    ),
    Family(
        "fittings", "FIT", 0.12,
        ("brass fittings", "stainless fittings", "plastic fittings"),
        ("1/4 in", "1/2 in", "3/4 in", "1 in", "1 1/2 in", "2 in"),
        "EA", (1.2, 65.0), (80.0, 1800.0), 5.0, 0.20, 1, 0.02, 0.10, 1,
        (("WC-W-MOLD", 0.005, 0.02),),
        promo_rate=0.02, return_rate=0.01, lead_days=(3, 10),
    ),
    Family(
        "spare parts", "SPR", 0.14,
        ("seal kits", "impellers", "bearings", "gaskets"),
        ("for CP-50", "for CP-65", "for SP-100", "for GM-30", "for VS-15", "universal"),
        "SET", (6.0, 450.0), (0.3, 6.0), 1.0, 0.10, 1, 0.0, 0.50, 0,
        (("WC-E-MACH", 0.1, 0.5),),
        intermittent=True, promo_rate=0.0, return_rate=0.01, lead_days=(5, 15),
    ),
    Family(
        "accessories", "ACC", 0.08,
        ("mounting kits", "cables", "gauges", "tools"),
        ("small", "medium", "large", "kit", "1 m", "5 m"),
        "EA", (4.0, 160.0), (10.0, 220.0), 12.0, 0.20, 1, 0.03, 0.80, 1,
        (("WC-W-ASM", 0.05, 0.2),),
        promo_rate=0.02, return_rate=0.03, lead_days=(3, 8),
    ),
)  # fmt: skip

CURRENCIES = ("USD", "EUR", "GBP")
# starting exchange rates to USD (rate_to_base)
FX_START = (1.0, 1.08, 1.27)

# (region, share of customers, currency index)
CUSTOMER_REGIONS: tuple[tuple[str, float, int], ...] = (
    ("North America", 0.55, 0),
    ("Europe", 0.22, 1),
    ("United Kingdom", 0.10, 2),
    ("Latin America", 0.07, 0),
    ("Asia Pacific", 0.06, 0),
)
# (segment, share, channel, discount off list price)
CUSTOMER_SEGMENTS: tuple[tuple[str, float, str, float], ...] = (
    ("OEM", 0.20, "direct", 0.08),
    ("Distributor", 0.30, "distributor", 0.10),
    ("Utilities", 0.12, "direct", 0.04),
    ("Agriculture", 0.13, "distributor", 0.03),
    ("Industrial end user", 0.17, "direct", 0.02),
    ("Construction", 0.08, "e-commerce", 0.0),
)
NAME_PREFIXES = (
    "Apex", "Blue River", "Northwind", "Summit", "Ironwood", "Prairie", "Harbor", "Crescent",
    "Granite", "Silverline", "Redstone", "Lakeside", "Evergreen", "Pioneer", "Atlas", "Beacon",
    "Cedar", "Delta", "Falcon", "Frontier", "Horizon", "Keystone", "Liberty", "Meridian",
    "Oakridge", "Pinnacle", "Quantum", "Riverside", "Sterling", "Titan", "Unity", "Vanguard",
    "Westfield", "Zenith", "Alpine", "Bayview", "Cobalt", "Dunmore", "Eastgate", "Fairway",
)  # fmt: skip
NAME_SUFFIXES = (
    "Industrial Supply", "Water Systems", "Engineering", "Agri Services", "Process Solutions",
    "Mechanical", "Utilities", "Fluid Power", "Building Services", "Plant Services",
    "Pumps and Controls", "Irrigation", "Automation", "Contractors", "Trading",
    "Maintenance", "Environmental", "Energy", "Farms", "Manufacturing",
)  # fmt: skip

PLANNERS = ("a.miller", "j.chen", "s.kowalski", "m.rossi", "p.okafor")
# reason_code -> (sign of the adjustment: +1, -1 or 0 for either, comment)
_REASON_TEXT = {
    "promotion": (1, "Promotion agreed with key distributors"),
    "new_customer": (1, "New account ramping up"),
    "lost_customer": (-1, "Customer moved volume to a competitor"),
    "price_change": (-1, "List price increase expected to dampen demand"),
    "supply_issue": (-1, "Component shortage limits what we can sell"),
    "market_intel": (0, "Field sales expects a change in project business"),
}
#: one (code, sign, comment) per reason code of the contract, in its order
OVERRIDE_REASONS: tuple[tuple[str, int, str], ...] = tuple(
    (code, *_REASON_TEXT[code]) for code in OVERRIDE_REASON_CODES
)
