"""Settings and the month calendar: what every other package may import (no Dagster, no I/O)."""
