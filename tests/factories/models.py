"""Forecast models for the worker-process tests (importable by the workers, which unpickle them).

Workers are started by the fork server with this process's ``sys.path``, so they import
``factories.models`` as the test module does.
"""

from __future__ import annotations

import multiprocessing
import os

from statsforecast.models import SeasonalNaive


class DiesInAWorker(SeasonalNaive):
    """A seasonal naive whose forecast kills the worker process it runs in (as an OOM kill would).

    In the test process it raises instead, so a call that wrongly stays in process fails
    the test rather than ending pytest.
    """

    def forecast(self, *args, **kwargs):
        if multiprocessing.parent_process() is not None:
            os._exit(17)
        raise RuntimeError("DiesInAWorker ran in the test process, not in a worker")
