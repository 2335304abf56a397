"""Step 6: the published tables, their dictionary, write-audit-publish and approval."""
