"""The executive pack and the planner's workbook, built from the published file."""
