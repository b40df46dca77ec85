"""optbench: an optimizer comparison benchmark on JAX, Flax and Optax.

The harness runs in one direction: matrix -> cells -> engine -> store -> report.
"""
__version__ = "0.1.0"
