"""Builders of test data shared by several test modules (no tests here).

``tests/`` is on ``sys.path`` under pytest, so a test module imports ``factories.<module>``.

- :mod:`factories.frames`: the plan_demand / plan_supply / plan_inventory columns on a key frame
- :mod:`factories.plan`: small published plans (approval, workbook and publication tests)
- :mod:`factories.pack`: a plan with every table filled and the full executive pack
- :mod:`factories.extracts`: a tiny company as contract extracts, and loading it
- :mod:`factories.models`: a forecast model that kills its worker process

Fixtures (tmp folders, connections) are in ``tests/conftest.py``.
"""
