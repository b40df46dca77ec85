"""Hostile input is one line and exit code 2, before anything is built, written or trained:
optimizer names that would break the install, hyperparameter values the optimizer cannot
use, malformed search spaces, matrices with no cells or absurd sizes, and where each
problem came from. Plan-level only: nothing here trains."""
import os
import time

import pytest

import optimizers
from bench import cli
from bench.errors import UserError
from bench.plan import expand, matrix
from optimizers import registry
from optimizers.space import NON_NEGATIVE, Choice, Interval, LogUniform, Uniform

BASE = 'workloads = ["synthetic-mlp"]\noptimizers = ["optax:sgd"]\nseeds = 1\n'


def plan(tmp_path, text):
    """The cells of a matrix file, as `optbench run FILE` builds them."""
    path = tmp_path / "m.toml"
    path.write_text(text)
    return expand.cells(matrix.load(path))


def refused(tmp_path, text, message):
    with pytest.raises(UserError) as info:
        plan(tmp_path, text)
    text = str(info.value)
    assert message in text, text
    assert "\n" not in text
    return text


# 1. new-optimizer refuses names that would break the generated file or the install

def new_optimizer(capsys, tmp_path, name, *flags):
    """`optbench new-optimizer NAME` into an empty folder: exit code, stderr, files made."""
    folder = tmp_path / "out"
    folder.mkdir(exist_ok=True)
    code = cli.main(["new-optimizer", name, "--dir", str(folder), "--tests-dir", str(folder), *flags])
    return code, capsys.readouterr().err, sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("name,message", [
    ("def", "is a Python keyword"),
    ("match", "is a Python keyword"),  # a soft keyword
    ("list", "is a Python builtin"),
    ("optax", "is a name the generated file itself uses"),
    ("jnp", "is a name the generated file itself uses"),
    ("jax", "is a name the generated file itself uses"),
    ("register", "is a name the generated file itself uses"),
    ("beta", "is a name the generated file itself uses"),
    ("get", "would replace optimizers.get"),
    ("names", "would replace optimizers.names"),
    ("json", "would shadow the module 'json' (the standard library)"),
    ("numpy", "would shadow the module 'numpy' (installed by numpy)"),
    ("flax", "would shadow the module 'flax'"),
    ("bench", "would shadow the module 'bench'"),
    ("registry", "optimizers/registry.py exists and was not written by `optbench new-optimizer registry`"),
    ("plugins", "optimizers/plugins.py exists and was not written"),
    ("space", "optimizers/space.py exists and was not written"),
    ("conformance", "optimizers/conformance.py exists and was not written"),
    ("adam", "'adam' is already registered (by "),
    ("momentum", "'momentum' is already registered"),
    ("", "the optimizer name is empty"),
    ("../evil", "must be lower case letters, digits and underscores"),
    ("a/b", "must be lower case letters"),
    ("[red]x[/red]", "must be lower case letters"),
    ("two\nlines", "must be lower case letters"),
    ("x" * 500, "is 500 characters long; keep it to 50"),
])
@pytest.mark.parametrize("force", [False, True])
def test_new_optimizer_refuses_names_that_break_things_even_with_force(capsys, tmp_path, name,
                                                                       message, force):
    code, err, written = new_optimizer(capsys, tmp_path, name, *(["--force"] if force else []))
    assert code == 2
    assert err.startswith("optbench: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert written == []  # nothing written anywhere we can see ...


def test_refused_names_leave_the_package_untouched(capsys, tmp_path):
    # ... and nothing in the package: the files a name collides with keep their content
    package = optimizers.registry.__file__
    before = open(package).read()
    code = cli.main(["new-optimizer", "registry", "--force"])
    assert code == 2 and open(package).read() == before
    assert "never overwritten, --force or not" in capsys.readouterr().err


def test_test_files_that_are_not_templates_are_never_overwritten(capsys, tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_fresh.py").write_text("# someone's own test\n")
    code = cli.main(["new-optimizer", "fresh", "--dir", str(tmp_path), "--tests-dir", str(tests),
                     "--force"])
    assert code == 2 and "test_fresh.py exists and was not written" in capsys.readouterr().err
    assert (tests / "test_fresh.py").read_text() == "# someone's own test\n"
    assert not (tmp_path / "fresh.py").exists()


def test_a_previous_template_is_overwritten_only_with_force(capsys, tmp_path):
    code, err, written = new_optimizer(capsys, tmp_path, "my_rule")
    assert code == 0 and written == ["my_rule.py", "test_my_rule.py"]
    code, err, _ = new_optimizer(capsys, tmp_path, "my_rule")
    assert code == 2 and "already exists; pass --force" in err
    assert new_optimizer(capsys, tmp_path, "my_rule", "--force")[0] == 0


def test_a_suggestion_is_offered_only_when_it_would_pass(capsys, tmp_path):
    code, err, _ = new_optimizer(capsys, tmp_path, "jnp")
    assert "for example 'my_jnp'" in err
    assert new_optimizer(capsys, tmp_path, "my_jnp")[0] == 0


# 2. hyperparameter values are checked in the dtype and range the optimizer uses

@pytest.mark.parametrize("name,overrides,message", [
    ("optax:adam", {"learning_rate": 5e-324}, "expected a number > 0, at least 1.2e-38 in"
                                              " magnitude: smaller is 0 in float32"),
    ("optax:adam", {"learning_rate": 1e-40}, "smaller is 0 in float32"),  # a subnormal: flushed
    ("optax:adam", {"learning_rate": 1e300}, "at most 3.4e+38 in magnitude: larger is inf in float32"),
    ("sgd", {"learning_rate": 10**400}, "larger is inf in float32"),
    ("optax:adam", {"eps": 1e308}, "eps=1e+308 is invalid; expected a number >= 0, at most 3.4e+38"),
    ("optax:adam", {"eps": 1e-50}, "expected a number >= 0, 0 or at least 1.2e-38 in magnitude"),
    ("optax:adam", {"learning_rate": float("inf")}, "expected a finite number > 0"),
    ("optax:adam", {"b2": 1.0}, "b2=1.0 is invalid; expected a number in [0, 1)"),
    ("optax:noisy_sgd", {"eta": -1}, "eta=-1 is invalid; expected a number >= 0"),
    ("optax:noisy_sgd", {"seed": 2**40}, "expected an integer >= 0 that fits in int32"),
    ("optax:adafactor", {"min_dim_size_to_factor": -3}, "expected an integer >= 0"),
    ("optax:adafactor", {"min_dim_size_to_factor": 2.5}, "expected an integer >= 0"),
    ("optax:adafactor", {"min_dim_size_to_factor": True}, "expected an integer >= 0"),
    ("optax:adafactor", {"clipping_threshold": 0.5}, "expected a number >= 1"),
    ("optax:schedule_free_adamw", {"warmup_steps": 1.5}, "expected an integer >= 0"),  # Optional[int]
    ("optax:lbfgs", {"memory_size": 0}, "expected an integer >= 1"),
    ("optax:muon", {"ns_steps": 0}, "expected an integer >= 1"),
    ("optax:muon", {"preconditioning": "frobenius2"}, "expected one of 'frobenius', 'spectral'"),
    ("optax:polyak_sgd", {"variant": "spss"}, "expected one of 'sps', 'sps+' (did you mean: sps"),
    ("optax:rprop", {"eta_plus": 0.5}, "expected a number > 1"),
    ("optax:rprop", {"eta_minus": 1.0}, "expected a number in (0, 1)"),
    ("schedule_free_sgd", {"warmup_steps": -1}, "expected an integer >= 0"),
])
def test_bad_hyperparameter_values_are_one_line(name, overrides, message):
    with pytest.raises(registry.RegistryError) as info:
        optimizers.get(name).resolve(overrides)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert str(info.value).startswith(f"optimizer '{name}': {next(iter(overrides))}=")


def test_the_edges_of_the_ranges_are_accepted():
    adam = optimizers.get("optax:adam")
    adam.resolve({"learning_rate": 1.2e-38, "b1": 0.0, "eps": 0.0, "eps_root": 3e38})
    optimizers.get("optax:adafactor").resolve({"min_dim_size_to_factor": 0, "clipping_threshold": 1})
    optimizers.get("optax:sgd").resolve({"momentum": None})  # nullable stays nullable


def test_a_float_annotation_is_not_turned_into_an_integer_by_its_default():
    def my_sgd(learning_rate: float = 0.1, weight_decay: float = 0):
        import optax
        return optax.sgd(learning_rate)

    try:
        spec = registry.register_factory("test:float_default", my_sgd)
        assert spec.kind("weight_decay") == "number"
        assert spec.resolve({"weight_decay": 0.01})["weight_decay"] == 0.01
    finally:
        registry.unregister("test:float_default")


def test_ranges_must_name_hyperparameters():
    with pytest.raises(registry.RegistryError, match=r"ranges= names \['etta'\]"):
        registry.register_factory("test:ranges", lambda learning_rate=0.1, eta=0.0: None,
                                  ranges={"etta": NON_NEGATIVE})
    assert "test:ranges" not in registry.names()


@pytest.mark.parametrize("name", optimizers.names())
def test_every_registered_default_and_search_range_passes_its_own_checks(name):
    spec = optimizers.get(name)
    for key, value in spec.defaults.items():
        spec.check(key, value)
    for key, dim in spec.space.items():
        for value in (dim.options if isinstance(dim, Choice) else (dim.low, dim.high)):
            spec.check(key, value)
        assert isinstance(dim, (Choice, Uniform, LogUniform))


def test_interval_describes_itself():
    assert Interval(0, low_open=True).describe() == "> 0"
    assert Interval(0, 1, high_open=True).describe() == "in [0, 1)"
    assert 1 not in Interval(0, 1, high_open=True) and 0 in Interval(0, 1, high_open=True)


# 3. malformed search spaces say where they are and what shape is expected

SEARCH = BASE.replace('["optax:sgd"]', "[{{name = \"optax:adam\", {extra}}}]") + "budget = 3\n"


@pytest.mark.parametrize("extra,message", [
    ("search = 5", "optimizer 'optax:adam': search must be a table of hyperparameter = [low, high]"),
    ("search = [1, 2]", "search must be a table of hyperparameter = [low, high]"),
    ("search = {}", "got search = {}"),
    ("search = {learning_rte = [1e-4, 1e-1]}",
     "has no hyperparameter 'learning_rte' to search (did you mean: learning_rate"),
    ('search = {b1 = "high"}', "search range for 'b1' must be [low, high], two numbers; got 'high'"),
    ('search = {learning_rate = ["a", "b"]}', "must be [low, high], two numbers"),
    ("search = {learning_rate = [1e-4, 1e-3, 1e-2]}", "must be [low, high], two numbers"),
    ("search = {learning_rate = [1e-1, 1e-4]}", "is inverted"),
    ("search = {learning_rate = [-1.0, 1.0]}", "log scale and needs low > 0"),
    ("search = {learning_rate = [1e-4, nan]}", "must be finite"),
    ("search = {b1 = [0.5, 1.0]}", "reaches outside the values it takes: b1=1.0 is invalid;"
                                   " expected a number in [0, 1)"),
    ("search = {nesterov = []}", "search range for 'nesterov' must be a non-empty list"),
    ("search = {nesterov = [true, 1]}", "nesterov=1 is invalid; expected true or false"),
    ("search = {nesterov = [true, true]}", "repeats an option"),
    ("learning_rate = 0.01, search = {learning_rate = [1e-4, 1e-1]}",
     "'learning_rate' is both set (learning_rate = 0.01) and searched; drop one"),
])
def test_malformed_search_spaces_name_their_place(tmp_path, extra, message):
    text = refused(tmp_path, SEARCH.format(extra=extra), message)
    assert text.startswith(f"matrix {tmp_path / 'm.toml'}, key 'optimizers': optimizer 'optax:adam'")


def test_integer_hyperparameters_are_searched_over_their_options(tmp_path):
    text = SEARCH.replace("optax:adam", "optax:lbfgs")
    cells = plan(tmp_path, text.format(extra="search = {memory_size = [5, 20]}"))
    assert {dict(c.hparams)["memory_size"] for c in cells if c.tuning.role == "trial"} <= {5, 20}
    refused(tmp_path, text.format(extra="search = {memory_size = [5.5, 20]}"),
            "memory_size=5.5 is invalid; expected an integer >= 1")


def test_nothing_left_to_tune_is_refused(tmp_path):
    refused(tmp_path, BASE.replace('"optax:sgd"', '{name = "optax:sgd", learning_rate = 0.1}')
            + "budget = 3\n", "so there is nothing to tune")


# 4. a matrix that would run nothing is refused

@pytest.mark.parametrize("text,message", [
    (BASE + "schedules = []\n", "key 'schedules' is empty: the matrix would have no cells"),
    (BASE.replace('["optax:sgd"]', "[]"), "'optimizers' is missing or empty"),
    (BASE.replace('["synthetic-mlp"]', "[]"), "'workloads' is missing or empty"),
    (BASE.replace("seeds = 1", "seeds = []"), "seeds is an empty list"),
])
def test_a_matrix_with_no_cells_is_refused(tmp_path, text, message):
    refused(tmp_path, text, message)


@pytest.mark.parametrize("overrides,message", [
    ({"optimizers": []}, "--optimizers names no optimizer: the matrix would have no cells"),
    ({"workloads": []}, "--workloads names no workload: the matrix would have no cells"),
    ({"optimizers": [""]}, "--optimizers: '' is not a valid optimizer name"),
    ({"seeds": ""}, "--seeds: seeds must be a count (3) or a list (0,1,2)"),
    ({"seeds": ",,"}, "--seeds: seeds must be a count"),
    ({"seeds": "1,,2"}, "--seeds: seeds must be a count"),
    ({"seeds": "0"}, "--seeds: seeds must be at least 1"),
    ({"steps": 0}, "--steps: 'steps' must be a positive integer"),
    ({"steps": 10**12}, "--steps: 'steps' = 1000000000000 is more than the limit of 10,000,000"),
])
def test_empty_or_bad_overrides_name_their_flag(overrides, message):
    with pytest.raises(UserError) as info:
        matrix.with_overrides(matrix.load(preset="smoke"), **overrides)
    assert message in str(info.value), str(info.value)


def test_a_matrix_emptied_in_python_is_refused_before_expansion():
    m = matrix.load(preset="smoke")
    m.optimizers = []
    with pytest.raises(UserError, match="key 'optimizers' is empty: the matrix would have no cells"):
        expand.cells(m)


# 5. limits, checked before any cell is built

@pytest.mark.parametrize("line,message", [
    ("steps = 9223372036854775807", "'steps' = 9223372036854775807 is more than the limit of 10,000,000"),
    ("budget = 1000000", "'budget' = 1000000 is more than the limit of 10,000"),
    ("tuning_seeds = 5000", "'tuning_seeds' = 5000 is more than the limit of 1,000"),
    ("budget = 2\ntuning_seeds = 2", "tuning_seeds = 2 but the matrix has 1 seeds"),
])
def test_limits_name_the_key_the_value_and_the_limit(tmp_path, line, message):
    refused(tmp_path, BASE + line + "\n", message)


@pytest.mark.parametrize("seeds,message", [
    ("1000000", "seeds = 1000000 is more than the limit of 1,000 seeds per cell"),
    (str(list(range(1001))), "1,001 seeds is more than the limit of 1,000"),
    ("[0, 2147483648]", "each from 0 to 2147483647"),
])
def test_seed_limits(tmp_path, seeds, message):
    refused(tmp_path, BASE.replace("seeds = 1", f"seeds = {seeds}"), message)


@pytest.mark.parametrize("key,value,limit", [
    ("steps", 10**8, "10,000,000"), ("eval_every", 10**8, "10,000,000"),
    ("batch_size", 10**6, "65,536"),
])
def test_workload_limits(tmp_path, key, value, limit):
    refused(tmp_path, BASE.replace('"synthetic-mlp"', f'{{name = "synthetic-mlp", {key} = {value}}}'),
            f"workload 'synthetic-mlp': '{key}' = {value} is more than the limit of {limit}")


def test_too_many_cells_fail_fast_without_building_any(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(expand, "Cell", lambda *a, **k: built.append(1))
    names = ", ".join(f'{{name = "optax:adam", learning_rate = {i + 1}e-4}}' for i in range(20))
    start = time.perf_counter()
    text = refused(tmp_path, BASE.replace('["optax:sgd"]', f"[{names}]") + "budget = 9999\n",
                   "asks for 200,020 cells (1 workloads x 1 schedules x 20 optimizers x 10001")
    assert "the limit is 100,000" in text
    assert time.perf_counter() - start < 2 and built == []


def test_describe_sizes_a_plan_without_training():
    cells = expand.cells(matrix.load(preset="quick"))
    assert expand.describe(cells) == (
        "49 cells in 49 compiled programs, 3 seeds per cell (0, 1, 2). Steps to train, every"
        " seed counted: mnist1d-mlp 42,000; mnist1d-cnn 31,500; mnist1d-gru 21,000;"
        " rosenbrock-2d 10,500; beale-2d 10,500; saddle-2d 10,500; rastrigin-2d 10,500;"
        " 136,500 in all.")
    tuned = expand.cells(matrix.from_dict(
        {"seeds": 3, "budget": 4, "workloads": ["synthetic-mlp"], "optimizers": ["adam"]},
        name="t", source="t"))
    # 1 untuned x 3 seeds + 4 trials x 1 seed + 1 tuned rerun x 3 seeds, 200 steps each
    assert "5 cells in 2 compiled programs (1 untuned, 4 tuning trials on 1 seed each; then" \
           " 1 tuned rerun, one per sweep)" in expand.describe(tuned)
    assert expand.describe(tuned).endswith("synthetic-mlp 2,000.")


# 6. an unknown name says where it came from

def test_unknown_names_from_flags_name_the_flag():
    quick = matrix.load(preset="quick")
    with pytest.raises(UserError) as info:
        expand.cells(matrix.with_overrides(quick, optimizers=["adamm"]))
    assert str(info.value).startswith("--optimizers: unknown optimizer 'adamm' (did you mean: adam")
    with pytest.raises(UserError) as info:
        expand.cells(matrix.with_overrides(quick, workloads=["mnist1d-mpl"]))
    assert str(info.value).startswith("--workloads: unknown workload 'mnist1d-mpl' (did you mean:"
                                      " mnist1d-mlp")


def test_unknown_names_from_a_file_name_the_file_and_key(tmp_path):
    path = tmp_path / "m.toml"
    text = refused(tmp_path, BASE.replace("optax:sgd", "optax:adma"), "did you mean: optax:adam")
    assert text.startswith(f"matrix {path}, key 'optimizers': unknown optimizer 'optax:adma'")
    text = refused(tmp_path, BASE.replace("synthetic-mlp", "synthetic-mpl"), "did you mean:")
    assert text.startswith(f"matrix {path}, key 'workloads': unknown workload 'synthetic-mpl'")


# 7. presets are names, never paths, never empty

@pytest.mark.parametrize("preset,message", [
    ("", "the preset name is empty; presets: grokking, quick, smoke, standard"),
    ("   ", "the preset name is empty"),
    ("../quick", "preset '../quick' is not a preset name; presets: grokking, quick, smoke, standard"),
    ("presets/quick", "is not a preset name"),
    ("quik", "unknown preset 'quik' (did you mean: quick?)"),
])
def test_bad_preset_names(preset, message):
    with pytest.raises(UserError) as info:
        matrix.load(preset=preset)
    assert message in str(info.value)


def test_empty_path_and_folder_are_not_matrix_files(tmp_path):
    with pytest.raises(UserError, match="the matrix file name is empty"):
        matrix.load("")
    with pytest.raises(UserError, match="is a folder; give a .toml file"):
        matrix.load(tmp_path)


# 8. every key has a type and a range

@pytest.mark.parametrize("text,message", [
    (BASE + "steps = true", "'steps' must be a positive integer; got true"),
    (BASE + "steps = 1.5", "'steps' must be a positive integer; got 1.5"),
    (BASE + "steps = -1", "'steps' must be a positive integer; got -1"),
    (BASE + "steps = nan", "'steps' must be a positive integer; got nan"),
    (BASE.replace("seeds = 1", "seeds = true"), "seeds must be a count"),
    (BASE.replace("seeds = 1", "seeds = 1.5"), "seeds must be a count"),
    (BASE.replace("seeds = 1", "seeds = [-1]"), "seeds must be a count"),
    (BASE.replace("seeds = 1", "seeds = [0, 0]"), "repeat a seed"),
    (BASE.replace("seeds = 1", "seeds = inf"), "seeds must be a count"),
    (BASE + "budget = true", "'budget' must be \"oneshot\" or a number of trials"),
    (BASE + "budget = 0", "'budget' must be \"oneshot\" or a number of trials"),
    (BASE + "budget = 2.5", "'budget' must be \"oneshot\" or a number of trials"),
    (BASE + 'budget = "lots"', "got 'lots'"),
    (BASE + "tuning_seeds = 0", "'tuning_seeds' must be a positive integer"),
    (BASE + "tuning_seeds = false", "'tuning_seeds' must be a positive integer; got false"),
    (BASE + "name = 5", "'name' must be a name of 1 to 100 printable characters"),
    (BASE + 'name = "../../etc"', "without / or \\"),
    (BASE + 'name = ""', "'name' must be a name"),
    (BASE + 'name = ".hidden"', "not starting with '.'"),
    (BASE + 'plugins = "p.py"', "'plugins' must be a list of file paths"),
    (BASE + 'plugins = [""]', "'plugins' must be a list of file paths"),
    (BASE + "schedules = 5", "'schedules' must be a list of names or tables"),
    (BASE + 'schedules = [{name = "wsd", warmup = nan}]', "must be a fraction of the steps in [0, 1)"),
    (BASE + 'schedules = [{name = "wsd", decay = true}]', "must be a fraction of the steps"),
    (BASE + '"two\\nlines" = 1', "unknown key 'two\\nlines'"),
    (BASE.replace('["optax:sgd"]', "[5]"), "each of 'optimizers' must be a name or a table"),
    (BASE.replace('["optax:sgd"]', "[{lr = 1}]"), "each of 'optimizers' must be a name or a table"),
    (BASE.replace('["optax:sgd"]', '[""]'), "'' is not a valid optimizer name"),
    (BASE.replace('"synthetic-mlp"', '{name = "synthetic-mlp", steps = true}'), "'steps' must be a positive integer"),
    (BASE.replace('"synthetic-mlp"', '{name = "synthetic-mlp", steps = 1.5}'), "'steps' must be a positive integer"),
    (BASE.replace('"synthetic-mlp"', '{name = "synthetic-mlp", eval_every = 0}'), "'eval_every' must be a positive integer"),
    (BASE.replace('"synthetic-mlp"', '{name = "synthetic-mlp", batch_size = -8}'), "'batch_size' must be a positive integer"),
    (BASE.replace('"optax:sgd"', '{name = "optax:adam", learning_rate = nan}'), "learning_rate=nan is invalid; expected a finite number > 0"),
    (BASE.replace('"optax:sgd"', '{name = "optax:adam", learning_rate = inf}'), "learning_rate=inf is invalid; expected a finite number > 0"),
    (BASE.replace('"optax:sgd"', '{name = "optax:adam", learning_rate = true}'), "learning_rate=True is invalid; expected a number"),
    (BASE.replace('"optax:sgd"', '{name = "optax:noisy_sgd", eta = -1}'), "eta=-1 is invalid; expected a number >= 0"),
])
def test_every_key_has_a_type_and_a_range(tmp_path, text, message):
    refused(tmp_path, text, message)


def test_user_strings_never_break_the_line(tmp_path):
    refused(tmp_path, BASE + 'schedules = ["con\\nstant"]', "unknown schedule 'con\\nstant'")
    refused(tmp_path, BASE + 'schedules = [{name = "wsd", "de\\ncay" = 0.1}]', "got 'de\\ncay'")
    refused(tmp_path, BASE.replace('"optax:sgd"', '{name = "optax:adam", "l\\nr" = 0.1}'),
            "has no hyperparameter 'l\\nr'")
    refused(tmp_path, BASE.replace('"optax:sgd"', '"ad\\nam"'), "'ad\\nam' is not a valid optimizer name")


def test_check_of_an_unknown_name_with_a_newline_is_one_line(capsys):
    assert cli.main(["check", "ad\nam"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown optimizer 'ad\\nam'" in err


NOT_UTF8 = os.fsdecode(b"bad\xff")  # a file name whose bytes are not UTF-8


@pytest.mark.parametrize("argv", [
    ["run", "--preset", "smoke", "--out", "{bad}"],
    ["run", "--preset", "smoke", "--out={bad}"],
    ["run", "{bad}.toml"],
    ["report", "{bad}"],
    ["compare", "a", "{bad}"],
    ["check", "{bad}"],
])
def test_a_name_that_is_not_utf8_is_refused_before_anything_runs(capsys, tmp_path, argv):
    """pyarrow and the pages take only UTF-8: such an --out ended an `optbench run` after
    training, in an internal error."""
    bad = str(tmp_path / NOT_UTF8)
    assert cli.main([a.format(bad=bad) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad\\xff" in err and "is not valid UTF-8" in err
    assert list(tmp_path.iterdir()) == []


def test_a_results_folder_under_a_path_that_is_not_utf8_is_refused(tmp_path, monkeypatch):
    from bench.runner.store import RunStore

    (tmp_path / NOT_UTF8).mkdir()
    monkeypatch.chdir(tmp_path / NOT_UTF8)  # a relative --out below it: the API's way in
    with pytest.raises(UserError, match=r"bad\\xff/results is not a valid UTF-8 path"):
        RunStore("results")


def test_a_relative_folder_after_the_current_one_was_deleted_is_named(capsys, tmp_path,
                                                                      monkeypatch):
    """The UTF-8 check asked for the current folder: once another shell had deleted it,
    every command said only 'No such file or directory'."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert cli.main(["report", "results/run"]) == 2
    err = capsys.readouterr().err
    assert err == "optbench: error: results/run is not an optbench results folder (it does not exist)\n"
