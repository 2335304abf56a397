"""Candidates: the statsforecast models each series kind competes with, and the fallback.

statsforecast is imported inside the functions (importing it costs seconds).
"""

from __future__ import annotations

from typing import Any

from sop_pipeline.planning.forecast.constants import FALLBACK, NAIVE, SEASON


def _candidate_models(kind: str, candidates: str) -> list[Any]:
    """The candidate models of one series kind ("smooth" or "intermittent"), baseline first.

    The order is the tie-break order: on equal error the earlier (simpler) model wins.
    """
    from statsforecast.models import (
        ADIDA,
        IMAPA,
        TSB,
        AutoARIMA,
        AutoCES,
        AutoETS,
        AutoTheta,
        CrostonSBA,
        DynamicOptimizedTheta,
        SeasonalNaive,
    )

    naive = SeasonalNaive(season_length=SEASON, alias=NAIVE)
    if kind == "intermittent":
        return [
            naive,
            CrostonSBA(alias="CrostonSBA"),
            ADIDA(alias="ADIDA"),
            IMAPA(alias="IMAPA"),
            TSB(alpha_d=0.1, alpha_p=0.1, alias="TSB"),
        ]
    models = [naive, DynamicOptimizedTheta(season_length=SEASON, alias="DynamicOptimizedTheta")]
    if candidates in ("auto", "full"):
        # Damped additive Holt-Winters: the M-competition workhorse at a quarter of AutoETS's cost.
        models.append(AutoETS(season_length=SEASON, model="AAA", damped=True, alias="ETS_AAdA"))
        models.append(AutoTheta(season_length=SEASON, alias="Theta"))
    if candidates == "full":
        models += [
            AutoETS(season_length=SEASON, alias="AutoETS"),
            AutoCES(season_length=SEASON, alias="CES"),
            AutoARIMA(season_length=SEASON, alias="AutoARIMA"),
        ]
    return models


_NATIVE_INTERVALS = {
    NAIVE,
    "DynamicOptimizedTheta",
    "ETS_AAdA",
    "Theta",
    "AutoETS",
    "CES",
    "AutoARIMA",
    FALLBACK,
}


def _fallback_model() -> Any:
    from sop_pipeline.planning.fallback_model import ForwardHistoricAverage

    return ForwardHistoricAverage(alias=FALLBACK)
