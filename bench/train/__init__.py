"""Training one program: datasets, workloads (their objectives), the functions a program
compiles, the engine, and what training used. This is the JAX side; nothing here touches
files."""
