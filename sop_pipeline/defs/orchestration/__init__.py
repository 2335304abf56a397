"""The monthly job, its schedule and the sensor that starts it when a month's extracts land."""
