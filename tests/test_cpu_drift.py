"""tools/cpu_drift.py: the machine's drift between windows of the same three programs."""
from tools import cpu_drift


def test_it_reports_each_programs_spread_and_their_correlations(capsys):
    assert cpu_drift.main(0.0) == 0  # two windows, however long they take
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("windows of 10; window medians / overall median:")
    for name in ("convolutions", "products", "elementwise"):
        line = next(l for l in out if l.strip().startswith(name))
        slowest, fastest = (float(w.rstrip("x,")) for w in line.split() if w.endswith(("x", "x,")))
        assert slowest >= 1.0 >= fastest > 0  # a median of window medians lies between them
    assert sum("correlation of windows" in l for l in out) == 3



def test_seconds_that_are_no_duration_are_refused():
    assert cpu_drift.seconds_given([]) == 60.0 and cpu_drift.seconds_given(["2.5"]) == 2.5
    for argv in (["x"], ["-1"], ["nan"], ["inf"], ["1e9"], ["1", "2"]):
        assert cpu_drift.seconds_given(argv) is None, argv
