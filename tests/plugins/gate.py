"""A test plugin: `test:gate`, plain SGD whose state initialisation waits at a gate the
test controls, so that a test can act (send a signal, start a second run) while a cell is
known to be in flight, never by guessing with a sleep.

With $OPTBENCH_TEST_GATE naming a folder, init writes `started` there, then waits until
`release` exists. Without it, it is SGD.
"""
import os
import time
from pathlib import Path

import optax

from optimizers import register


def wait_at_gate() -> None:
    folder = os.environ.get("OPTBENCH_TEST_GATE")
    if not folder:
        return
    (Path(folder) / "started").touch()
    while not (Path(folder) / "release").exists():
        time.sleep(0.01)  # polls an event the test controls; never decides anything by time


@register("test:gate")
def gate(learning_rate: float = 0.1) -> optax.GradientTransformation:
    sgd = optax.sgd(learning_rate)

    def init(params):
        wait_at_gate()  # runs while the engine traces init, in the process that trains
        return sgd.init(params)

    return optax.GradientTransformation(init, sgd.update)
