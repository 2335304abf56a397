"""The demo company behind ``sop generate``: its master data, demand, operations and extracts."""
