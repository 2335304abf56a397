"""Step 5 in Dagster, executive review: scenarios, waterfall and the ``sop_approve`` job."""
