"""Step 1, data gathering: the extract contract, the reader and the loader into schema ``raw``."""
