"""Running planned cells: the executors, the driver, and the results folder they write
(store, the column schema, the environment)."""
