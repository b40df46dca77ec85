"""Planning: a matrix (parsed and validated), its cells and their identity, schedules and
the tuning protocol. Nothing here trains."""
