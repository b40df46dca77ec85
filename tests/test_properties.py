"""Property-based hostile input (Hypothesis): random TOML matrices and random command lines
always end with exit 0, 1 or 2, an error is one line (never a traceback, never an internal
error), and nothing is written outside the folder the command was given."""
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import cli

ODD_TEXT = st.sampled_from(["", " ", "../../evil", "/etc/passwd", "a/b", "my:[/red]", "$x$",
                            "<script>", "x\ny", "\x1b[2J", "é", "a" * 300, "nan", "-1", "0",
                            "adam", "optax:sgd", "synthetic-mlp", "quick", "constant", "cosine"])
NUMBERS = st.one_of(st.integers(-3, 5), st.sampled_from([0, 10**19, 2**31, -(2**63)]),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([5e-324, 1e300]))
ATOMS = st.one_of(NUMBERS, st.booleans(), ODD_TEXT)
VALUES = st.recursive(ATOMS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(
        ["name", "learning_rate", "steps", "search", "b1", "eps", "seeds", "batch_size"]), inner,
        max_size=3)), max_leaves=6)
KEYS = ["name", "seeds", "steps", "workloads", "optimizers", "schedules", "budget", "plugins",
        "batch_size", "eval_every", "tuning_seeds", "unknown_key"]
MATRICES = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def toml(value) -> str:
    """A TOML value (inline), including what TOML allows but users rarely mean: nan, inf."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")) \
            if not math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + "}"


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def check_outcome(code: int, err: str) -> None:
    assert code in (0, 1, 2), err
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("optbench: error: "), err


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@SETTINGS
@given(matrix=MATRICES, raw=st.one_of(st.none(), st.text(max_size=40)))
def test_random_matrices_end_in_one_line_or_a_plan(sandbox, capsys, matrix, raw):
    path = sandbox / "m.toml"
    path.write_text(raw if raw is not None else
                    "\n".join(f"{key} = {toml(value)}" for key, value in matrix.items()))
    before = tree(sandbox)
    code = cli.main(["run", str(path), "--dry-run"])
    check_outcome(code, capsys.readouterr().err)
    assert tree(sandbox) == before  # a dry run writes nothing


FLAGS = st.sampled_from(["--preset", "--workloads", "--optimizers", "--seeds", "--steps",
                         "--executor", "--workers", "--cell-timeout", "--address", "--plugin",
                         "--data-dir", "--resume", "--force", "--metric",
                         "--fail-on-regression", "--allow-missing", "--bogus"])
COMMANDS = st.sampled_from(["run", "list", "report", "compare", "check", "repair", "new-optimizer",
                            "nonsense"])


@SETTINGS
@given(command=COMMANDS, words=st.lists(st.one_of(FLAGS, ODD_TEXT), max_size=6))
def test_random_command_lines_end_in_one_line_and_write_only_where_told(sandbox, capsys,
                                                                       command, words):
    allowed = sandbox / "out"
    argv = [command, *words]
    if command == "run":
        argv.append("--dry-run")  # the plan is checked in full; nothing trains
    if command == "new-optimizer":
        argv += ["--dir", str(allowed / "opt"), "--tests-dir", str(allowed / "tests")]
    if command in ("report", "compare"):
        argv += ["--out", str(allowed)]
    if command == "check":
        argv = [word for word in argv if word not in ("adam", "optax:sgd")]  # no slow checks
    before = tree(sandbox)
    code = cli.main(argv)
    check_outcome(code, capsys.readouterr().err)
    written = {p for p in tree(sandbox) - before if not p.startswith("out")}
    assert not written, written


BASE = {"name": "p", "seeds": 1, "steps": 20, "workloads": ["synthetic-mlp"],
        "optimizers": ["optax:sgd"]}
HPARAMS = st.sampled_from(["learning_rate", "b1", "b2", "eps", "weight_decay", "nesterov",
                           "momentum", "search", "label", "min_dim_size_to_factor"])
OPTIMIZERS = st.sampled_from(["optax:adam", "optax:sgd", "adam", "optax:adafactor",
                              "optax:noisy_sgd", "lion"])
PLAUSIBLE = st.one_of(st.sampled_from([0.1, 1e-3, 0.5, 0.9, 0.999, 1.0, 2, 1e-8, 0, -1, True,
                                        "adam", ["optax:adam", "lion"], ["synthetic-mlp"],
                                        {"learning_rate": [1e-4, 1e-1]}]), ATOMS, VALUES)
NEAR_VALID = st.one_of(
    st.tuples(st.sampled_from(KEYS), PLAUSIBLE).map(lambda kv: {**BASE, kv[0]: kv[1]}),
    st.tuples(OPTIMIZERS, HPARAMS, PLAUSIBLE).map(
        lambda t: {**BASE, "optimizers": [{"name": t[0], t[1]: t[2]}]}))


@SETTINGS
@given(matrix=NEAR_VALID)
def test_one_hostile_value_in_a_valid_matrix_ends_in_one_line_or_a_plan(sandbox, capsys, matrix):
    path = sandbox / "m.toml"
    path.write_text("\n".join(f"{key} = {toml(value)}" for key, value in matrix.items()))
    code = cli.main(["run", str(path), "--dry-run"])
    check_outcome(code, capsys.readouterr().err)


@settings(SETTINGS, max_examples=6)
@given(matrix=NEAR_VALID)
def test_runs_of_near_valid_matrices_write_only_into_their_folder(sandbox, capsys, matrix):
    path = sandbox / "m.toml"
    path.write_text("\n".join(f"{key} = {toml(value)}" for key, value in matrix.items()))
    before = tree(sandbox)
    code = cli.main(["run", str(path), "--out", str(sandbox / "out"), "--force"])
    check_outcome(code, capsys.readouterr().err)
    written = {p for p in tree(sandbox) - before if not p.startswith("out")}
    assert not written, written
