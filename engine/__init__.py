"""The job engine: schedules QUEUED executions on this node and runs them."""
