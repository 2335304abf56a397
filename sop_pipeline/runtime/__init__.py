"""Running the monthly job from a terminal: the in-process runner, progress, step log, run summary."""
