"""Reading results: statistics, the AlgoPerf score, tables, plots, report, compare and the
terminal summary, from the stored tables alone (no JAX)."""
