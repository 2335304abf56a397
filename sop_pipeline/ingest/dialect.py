"""How the source writes its CSV files: ``landing/dialect.yaml`` (DESIGN §4).

The dialect is declared, never guessed: a file that does not match it is rejected with a
message that names the declaration to fix. Absent file = the documented defaults (UTF-8,
comma, dot decimals, ISO dates).

```yaml
encoding: utf-8
delimiter: ","
decimal: "."
date_format: "%Y-%m-%d"
extracts:
  sales_orders: {encoding: cp1252, delimiter: ";", decimal: ",", date_format: "%d.%m.%Y"}
```
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from sop_pipeline.errors import InvalidInputError
from sop_pipeline.ingest.contract import DIALECT_FILE, EXTRACTS

_KEYS = ("encoding", "delimiter", "decimal", "date_format")


class DialectError(InvalidInputError, ValueError):
    """``dialect.yaml`` is unusable; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class Dialect:
    """How one extract's CSV is written.

    Attributes:
        encoding: Python codec name (``utf-8``, ``cp1252``, ``latin-1`` …). A UTF-8 byte
            order mark is tolerated whatever the declared encoding family.
        delimiter: one character between fields.
        decimal: decimal mark of numbers, ``.`` or ``,``.
        date_format: ``strftime`` format of dates (``%Y-%m-%d``, ``%d.%m.%Y`` …).
    """

    encoding: str = "utf-8"
    delimiter: str = ","
    decimal: str = "."
    date_format: str = "%Y-%m-%d"

    def describe(self) -> str:
        """Short text for messages: ``encoding utf-8, delimiter ',', decimal '.', dates %Y-%m-%d``."""
        return (
            f"encoding {self.encoding}, delimiter {self.delimiter!r}, "
            f"decimal {self.decimal!r}, dates {self.date_format}"
        )


@dataclass(frozen=True)
class DialectConfig:
    """The declared dialect of a landing folder: defaults plus per-extract overrides.

    Attributes:
        default: the dialect of every extract without an override.
        overrides: extract name → its dialect.
        path: the ``dialect.yaml`` it was read from (None when absent: defaults).
    """

    default: Dialect = field(default_factory=Dialect)
    overrides: dict[str, Dialect] = field(default_factory=dict)
    path: Path | None = None

    def for_extract(self, name: str) -> Dialect:
        """The dialect of extract ``name`` (its override, else the default)."""
        return self.overrides.get(name, self.default)


def _validate(values: dict[str, Any], where: str, base: Dialect) -> Dialect:
    unknown = sorted(set(values) - set(_KEYS))
    if unknown:
        raise DialectError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys are {', '.join(_KEYS)}."
        )
    for key, value in values.items():
        if not isinstance(value, str) or not value:
            raise DialectError(f"{where}: {key} must be a non-empty text value, got {value!r}.")
    dialect = replace(base, **values)
    try:
        codecs.lookup(dialect.encoding)
    except LookupError:
        raise DialectError(
            f"{where}: encoding {dialect.encoding!r} is not a known encoding; use a Python codec "
            "name such as utf-8, cp1252 or latin-1."
        ) from None
    if len(dialect.delimiter) != 1 or dialect.delimiter in '\r\n"':
        raise DialectError(
            f"{where}: delimiter {dialect.delimiter!r} must be one character (e.g. ',', ';', '|' or a tab)."
        )
    if dialect.decimal not in (".", ","):
        raise DialectError(f"{where}: decimal {dialect.decimal!r} must be '.' or ','.")
    if dialect.decimal == dialect.delimiter:
        raise DialectError(
            f"{where}: decimal and delimiter are both {dialect.decimal!r}; they must differ "
            "(a decimal comma needs another delimiter such as ';')."
        )
    if "%" not in dialect.date_format:
        raise DialectError(
            f"{where}: date_format {dialect.date_format!r} has no strftime directive; use e.g. %Y-%m-%d or %d.%m.%Y."
        )
    # a format must round-trip a date, otherwise every date would be rejected later
    sample = date(2026, 10, 31)
    try:
        back = datetime.strptime(sample.strftime(dialect.date_format), dialect.date_format).date()
    except ValueError:
        back = None
    if back != sample:
        raise DialectError(
            f"{where}: date_format {dialect.date_format!r} cannot express a full date "
            "(it needs day, month and year, e.g. %d.%m.%Y)."
        )
    return dialect


def load_dialect(landing_dir: Path) -> DialectConfig:
    """Read ``landing_dir/dialect.yaml`` (absent: the documented defaults).

    Args:
        landing_dir: the folder holding the month folders.

    Returns:
        The validated dialect configuration.

    Raises:
        DialectError: the file is not YAML, has unknown keys or extracts, or declares an
            unusable encoding, delimiter, decimal mark or date format. The message names
            the file and the key.
    """
    path = Path(landing_dir) / DIALECT_FILE
    if not path.exists():
        return DialectConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DialectError(f"{path}: not valid YAML ({exc}); fix the file.") from None
    except UnicodeDecodeError:
        raise DialectError(f"{path}: the dialect file itself must be UTF-8 text.") from None
    if data is None:
        return DialectConfig(path=path)
    if not isinstance(data, dict):
        raise DialectError(f"{path}: expected a mapping of {', '.join(_KEYS)} and extracts.")
    data = dict(data)
    extracts = data.pop("extracts", None) or {}
    default = _validate(data, str(path), Dialect())
    if not isinstance(extracts, dict):
        raise DialectError(f"{path}: 'extracts' must map extract names to dialect settings.")
    overrides: dict[str, Dialect] = {}
    for name, values in extracts.items():
        if name not in EXTRACTS:
            raise DialectError(
                f"{path}: extracts.{name} is not an extract of the contract; use one of "
                f"{', '.join(EXTRACTS)}."
            )
        if not isinstance(values, dict):
            raise DialectError(f"{path}: extracts.{name} must be a mapping of {', '.join(_KEYS)}.")
        overrides[name] = _validate(dict(values), f"{path} (extracts.{name})", default)
    return DialectConfig(default=default, overrides=overrides, path=path)


__all__ = ["Dialect", "DialectConfig", "DialectError", "load_dialect"]
