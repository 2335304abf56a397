"""What every gate check returns: ``GateCheck``, and the helpers both check modules share.

``quality.gate`` (suites, horizon and cross-table checks) and ``quality.consistency`` (the
consistency suite) both build ``GateCheck`` objects; they live here so that neither module
imports the other's internals (``gate`` runs ``consistency``, not the other way round).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

#: Failing rows quoted per failed rule (in the message and in ``failures[...]["examples"]``).
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class GateCheck:
    """One check of the gate.

    Attributes:
        name: ``suite:<table>`` or the Python check's name.
        table: the table checked (the first one for cross-table checks).
        passed: the check passed.
        evaluated: expectations (suites) or rules (Python checks) evaluated.
        message: one readable paragraph: what failed, where, with example keys.
        failures: one dict per failed expectation or rule: ``rule``, ``column``,
            ``count``, ``examples`` (key values of failing rows).
        blocking: a failure blocks publication; a non-blocking check that fails is a
            warning: reported (run summary, gate_results, the Dagster check's text) but the
            plan is published.
    """

    name: str
    table: str
    passed: bool
    evaluated: int
    message: str
    failures: list[dict] = field(default_factory=list)
    blocking: bool = True


def _plain_row(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, pd.Timestamp):
            out[k] = v.date().isoformat()
        elif hasattr(v, "item"):
            out[k] = v.item()
        else:
            out[k] = v
    return out
