"""The report's layout for runs with many or long labels (a tuning run): short names with a
key, trials kept out of the ranked tables and figures, ties within noise, ranks in the
heatmap, learning-rate sensitivity only for 1-D sweeps, figures sized to their labels.
Every table here is synthetic: no training."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from bench.report import aliases, analysis, figure_files, layout, plots, report, sweeps
from bench.report.tables import workload_table
from bench.runner.results import Results

TARGET = 0.5
TRIAL = re.compile(r"·t[0-9]")  # a trial's alias


def seed_rows(cell_id, optimizer, label, role, scores, hparams, *, workload="w", trial=None,
              step_time=1e-3, iqr=1e-4):
    """One runs.parquet row per score (one seed each), with the columns the report reads."""
    rows = []
    for seed, score in enumerate(scores):
        rows.append({
            "cell_id": cell_id, "match_key": cell_id, "workload": workload,
            "optimizer": optimizer, "label": label, "role": role, "trial": trial,
            "schedule": "constant", "hparams": json.dumps(hparams), "steps": 100,
            "eval_every": 50, "batch_size": 10, "seed": seed, "status": "done",
            "final_val_accuracy": score, "final_test_accuracy": score - 0.01,
            "final_test_loss": 1 - score, "best_target": score,
            "target_metric": "val_accuracy", "target_value": TARGET, "target_direction": "max",
            "target_step": 50.0 if score >= TARGET else math.nan,
            "target_seconds": 0.05 if score >= TARGET else math.nan,
            "algoperf_step": 50.0 if score >= TARGET else math.nan,
            "algoperf_seconds": 1.05 if score >= TARGET else math.nan,
            "step_time_median_s": step_time, "step_time_iqr_s": iqr, "steps_per_s": 1 / step_time,
            "state_bytes": 64.0, "param_bytes": 32.0, "state_to_param": 2.0,
            "update_s": step_time / 4, "update_share": 0.25, "mfu": math.nan,
            "param_count": 8.0, "trials_in_program": 1,
        })
    return rows


def tuning_runs(adam="adam", workloads=("w",)) -> pd.DataFrame:
    """Per workload: untuned `adam` and sgd (3 seeds), four trials each (adam's vary b1 and
    the learning rate, sgd's the learning rate only) and their tuned reruns."""
    rows = []
    for w in workloads:
        for name, base in ((adam, 0.7), ("sgd", 0.4)):
            rows += seed_rows(f"{w}-{name}", name, name, "oneshot", [base, base + 0.01, base + 0.02],
                              {"learning_rate": 0.01}, workload=w)
            for t in range(4):
                drawn = {"learning_rate": 10.0 ** -(t + 1), **({"b1": 0.8 + 0.05 * t}
                                                               if name == adam else {})}
                shown = ", ".join(f"{k}={v:.4g}" for k, v in drawn.items())
                rows += seed_rows(f"{w}-{name}-t{t}", name, f"{name}(trial {t}: {shown})", "trial",
                                  [base - 0.1 + 0.03 * t], drawn, workload=w, trial=t)
            rows += seed_rows(f"{w}-{name}-tuned", name,
                              f"{name}(tuned: learning_rate=0.0001, b1=0.95)", "tuned",
                              [base + 0.1, base + 0.11, base + 0.12], {"learning_rate": 1e-4},
                              workload=w, trial=3)
    return pd.DataFrame(rows)


def curves_of(runs: pd.DataFrame) -> pd.DataFrame:
    rows = [{"cell_id": r["cell_id"], "seed": r["seed"], "step": step,
             "train_seconds": step * 1e-3, "train_loss": 1.0 / step,
             "val_loss": 1.0 / step, "test_loss": 1.0 / step, "test_accuracy": r["final_val_accuracy"],
             "val_accuracy": r["final_val_accuracy"] * step / 100}
            for r in runs.to_dict("records") for step in (50, 100)]
    return pd.DataFrame(rows)


def built(tmp_path: Path, runs: pd.DataFrame) -> report.Report:
    manifest = {"config": {"matrix": {"name": "synthetic"}}}
    return report.build(Results(tmp_path, manifest, runs, curves_of(runs)))


@pytest.fixture
def figures(monkeypatch):
    """Every figure the report saves: {file name: (figure, its texts)}, the texts read after
    the layout ran."""
    saved = {}
    original = figure_files.save  # every figure module saves through it

    def spy(fig, path, **layout):
        written = original(fig, path, **layout)
        saved[Path(path).name] = (fig, [t.get_text() for t in fig.findobj(Text) if t.get_visible()])
        return written
    monkeypatch.setattr(figure_files, "save", spy)
    return saved


def test_long_labels_get_aliases_and_a_key_that_escapes_hostile_names(tmp_path):
    hostile = "<script>x</script>/opt"
    paths = report.write(built(tmp_path, tuning_runs(adam=hostile)))
    page = paths["html"].read_text()
    assert "<script>x" not in page
    assert "&lt;script&gt;x&lt;/script&gt;/opt·t2" in page  # the alias, escaped
    assert "Key: the short names in the plots and tables" in page
    # the key maps each alias to the full label and every hyperparameter
    key = aliases.key_table(built(tmp_path, tuning_runs()).all_cells)
    rows = {row[0][0]: [text for text, _ in row] for row in key.rows}
    assert rows["adam·t2"][3] == "adam(trial 2: learning_rate=0.001, b1=0.9)"
    assert rows["adam·t2"][4] == "b1=0.9, learning_rate=0.001"
    assert rows["sgd·tuned"][2] == "tuned"
    assert "adam" not in rows  # a short label is its own name and needs no key
    assert "·t2" in paths["markdown"].read_text()


def test_aliases_stay_distinct_and_a_long_untuned_label_gets_a_number():
    long = "adam(b1=0.91, b2=0.999, eps=1e-08, learning_rate=0.003)"
    runs = pd.DataFrame(seed_rows("a", "adam", long, "oneshot", [0.6], {})
                        + seed_rows("b", "adam", long + " [x]", "oneshot", [0.6], {})
                        + seed_rows("c", "adam", "adam·1", "oneshot", [0.6], {}))
    named = aliases.assign(runs).drop_duplicates("cell_id").set_index("cell_id")["label"]
    assert named["c"] == "adam·1" and {named["a"], named["b"]} == {"adam·2", "adam·3"}
    assert named.is_unique
    plain = "optax:schedule_free_adamw"  # a long name, but the optimizer's own: kept
    assert aliases.assign(pd.DataFrame(seed_rows("d", plain, plain, "oneshot", [0.6], {})))[
        "label"].iloc[0] == plain


def test_trials_stay_out_of_the_ranked_tables_and_figures(tmp_path, figures):
    result = built(tmp_path, tuning_runs())
    assert set(result.cells["role"]) == {"oneshot", "tuned"}
    assert sorted(result.cells["tied_rank"]) == [1, 2, 3, 4]  # ranked among themselves
    for table in report.tables(result):
        assert not any(TRIAL.search(text) for row in table.rows for text, _ in row), table.title
    report.write(result, tmp_path / "out")
    ranked = ("curves_by_step.png", "curves_by_time.png", "final_metric.png", "step_time.png",
              "state_memory.png", "heatmap.png", "time_to_target.png")
    for name in ranked:
        _, texts = figures[name]
        assert not any(TRIAL.search(text) or "trial" in text for text in texts), name
    assert "adam·tuned" in figures["final_metric.png"][1]
    assert "sgd" in figures["lr_sensitivity.png"][1]  # the tuning section keeps its trials


def test_overlapping_intervals_share_a_rank():
    cells = pd.DataFrame({"final_m": [0.80, 0.79, 0.60, 0.59],
                          "final_m_low": [0.78, 0.77, 0.59, math.nan],
                          "final_m_high": [0.82, 0.81, 0.61, math.nan]}, index=list("ABCD"))
    rank, tied = analysis.tied_ranks(cells, "final_m", ascending=False)
    assert rank.to_dict() == {"A": 1, "B": 1, "C": 3, "D": 3}  # D: no interval, inside C's
    assert tied.to_dict() == {"A": True, "B": True, "C": True, "D": True}
    apart = cells.assign(final_m_low=cells["final_m"] - 0.001, final_m_high=cells["final_m"] + 0.001)
    rank, tied = analysis.tied_ranks(apart, "final_m", ascending=False)
    assert rank.tolist() == [1, 2, 3, 4] and not tied.any()
    # lower is better: the order turns, the ties do not
    rank, _ = analysis.tied_ranks(cells, "final_m", ascending=True)
    assert rank.to_dict() == {"D": 1, "C": 1, "B": 3, "A": 3}


def test_a_tie_is_written_as_such_and_a_speed_ratio_inside_the_noise_says_so():
    runs = pd.DataFrame(
        seed_rows("a", "sgd", "sgd", "oneshot", [0.60, 0.62, 0.64], {}, step_time=1.0e-3, iqr=2e-4)
        + seed_rows("b", "adam", "adam", "oneshot", [0.61, 0.63, 0.65], {}, step_time=1.05e-3,
                    iqr=2e-4)
        + seed_rows("c", "lion", "lion", "oneshot", [0.20, 0.21, 0.22], {}, step_time=3e-3,
                    iqr=1e-4))
    table = workload_table(analysis.cell_table(runs), "w")
    rows = {row[1][0]: [text for text, _ in row] for row in table.rows}
    ratio = table.header.index("step time vs SGD")
    assert rows["adam"][0] == "=1" and rows["sgd"][0] == "=1" and rows["lion"][0] == "3"
    assert rows["adam"][ratio].startswith("1.05x [") and rows["adam"][ratio].endswith("within noise")
    assert "within noise" not in rows["lion"][ratio]  # 3.0x [2.4, 3.9]
    assert rows["adam"][table.header.index("step time")] == "1.05 ms (IQR 200 µs)"


def test_no_step_time_ratio_against_an_sgd_whose_seeds_all_diverged():
    # a diverged SGD cell stops after one short chunk (5 steps on beale-2d): its "step time"
    # is the launch (174 us against adam's 8 us), and adam read "0.05x [0.05, 0.05]" vs SGD
    diverged = [dict(row, status="diverged") for row in
                seed_rows("a", "sgd", "sgd", "oneshot", [0.1, 0.1, 0.1], {}, step_time=1.7e-4,
                          iqr=math.nan)]
    runs = pd.DataFrame(diverged + seed_rows("b", "adam", "adam", "oneshot", [0.61, 0.63, 0.65],
                                             {}, step_time=8e-6, iqr=1e-6))
    table = workload_table(analysis.cell_table(runs), "w")
    rows = {row[1][0]: [text for text, _ in row] for row in table.rows}
    assert "step time vs SGD" not in table.header or all(
        row[table.header.index("step time vs SGD")] == "—" for row in rows.values())


def test_heatmap_shows_ranks_with_rows_ordered_by_mean_rank(tmp_path):
    runs = pd.concat([pd.DataFrame(
        seed_rows(f"{w}-{name}", name, name, "oneshot", [score, score + 0.001, score + 0.002], {},
                  workload=w))
        for w, order in (("w1", ("c", "a", "b")), ("w2", ("c", "b", "a")), ("w3", ("a", "c", "b")))
        for name, score in zip(order, (0.9, 0.5, 0.1))], ignore_index=True)
    cells = built(tmp_path, runs).cells
    ranks, text = plots.rank_grid(cells)
    assert ranks.index.tolist() == ["c", "a", "b"]  # mean ranks 1.33, 2, 2.67; not by name
    assert ranks.loc["c"].tolist() == [1, 1, 2]  # ranks, not scores stretched to [0, 1]
    assert ranks.loc["a", "w1"] == 2 and ranks.loc["a", "w2"] == 3
    assert text.loc["c", "w1"] == "1\n0.901"  # the absolute value beside the rank


def test_learning_rate_sensitivity_only_for_one_dimensional_sweeps(tmp_path, figures):
    result = built(tmp_path, tuning_runs())
    kept, skipped = sweeps.one_dimensional_sweeps(result.all_cells)
    assert set(kept["optimizer"]) == {"sgd"}
    assert [(w, o, others) for w, o, _, others in skipped] == [("w", "adam", ["b1"])]
    assert any("w x adam: its trials vary b1" in n and "coloured by b1" in n
               for n in result.notes)
    report.write(result, tmp_path / "out")
    texts = figures["lr_sensitivity.png"][1]
    assert "sgd" in texts and "adam" not in texts
    assert any(t.startswith("target") for t in texts)  # the target line, in the legend
    others = figures["lr_and_others.png"][1]  # the 2-D sweep, coloured by what else varies
    assert "w x adam" in others and "b1" in others and "sgd" not in " ".join(others)


def inside(fig, artist) -> bool:
    box, frame = artist.get_window_extent(FigureCanvasAgg(fig).get_renderer()), fig.bbox
    return (box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1
            and box.y0 >= frame.y0 - 1 and box.y1 <= frame.y1 + 1)


@pytest.mark.parametrize("length", [4, 22])  # 22 + 1: under aliases.MAX_LABEL, shown whole
def test_figures_grow_with_their_labels_and_clip_nothing(tmp_path, figures, length):
    label = ("x" * length)[:length]
    runs = pd.concat([pd.DataFrame(seed_rows(f"{w}-{i}", f"o{i}", f"{label}{i}", "oneshot",
                                             [0.5 + i / 10, 0.51 + i / 10], {}, workload=w))
                      for w in ("mnist1d-mlp", "mnist1d-logreg") for i in range(3)])
    report.write(built(tmp_path, runs), tmp_path / "out")
    for name in ("final_metric.png", "step_time.png", "heatmap.png"):
        fig, _ = figures[name]
        for ax in fig.axes:
            if ax.get_visible():
                assert inside(fig, ax.title), (name, ax.get_title())
                for tick in ax.get_yticklabels():
                    assert inside(fig, tick), (name, tick.get_text())
    fig, _ = figures["final_metric.png"]
    renderer = FigureCanvasAgg(fig).get_renderer()
    for ax in fig.axes:  # tick labels never run together ("00.25")
        boxes = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels()
                        if t.get_text()), key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))
    width = figures["final_metric.png"][0].get_figwidth()
    expected = 2 * (3.6 + layout.label_inches([label + "0"]))
    assert width == pytest.approx(expected)
    assert layout.label_inches(["x" * 23]) > layout.label_inches(["x" * 5]) + 1.5


def test_many_lines_get_distinct_styles():
    styles = layout.line_styles([f"label{i}" for i in range(25)])
    assert len({(s["color"], s["ls"]) for s in styles.values()}) == 25


def test_many_workloads_wrap_into_rows():
    fig, groups = layout.grid(7, 4.0, 3.0)
    assert len(groups) == 7 and fig.get_figwidth() == pytest.approx(3 * 4.0)
    assert fig.get_figheight() == pytest.approx(3 * 3.0)
    assert sum(ax.get_visible() for ax in fig.axes) == 7
    assert np.isclose(layout.grid(2, 4.0, 3.0, rows_each=2)[0].get_figheight(), 6.0)


def test_terminal_tables_keep_a_hyperparameter_value_whole():
    """The run's summary prints full labels; a value folded mid-number
    (`learning_rate=0.00` / `07409)`) reads as two numbers."""
    import io

    from rich.console import Console

    from bench.report import render

    label = "optax:adam(tuned: b1=0.8495, b2=0.9099, learning_rate=0.0007409)"
    table = render.Table(header=["rank", "optimizer", *(f"a long column header {i}"
                                                       for i in range(7))],
                         rows=[[("=1", 1.0), (label, None), *(("0.930 [0.930, 0.930]", 0.93),)
                                * 7]])
    out = io.StringIO()
    Console(file=out, width=160, markup=False, highlight=False).print(render.terminal(table))
    assert "learning_rate=0.0007409)" in out.getvalue()


def test_a_figures_spread_goes_on_its_own_line_and_text_columns_head_left():
    """Fourteen columns of '0.912 [0.905, 0.919]' scrolled sideways at 1300 px: the spread
    (an interval, an IQR, a verdict on it) now sits under its figure, the text unchanged."""
    import re

    from bench.report.render import Table, html_table

    table = Table(["optimizer", "accuracy", "step time", "speed"], [
        [("adam <b>", None), ("0.912 [0.905, 0.919]", 0.912), ("77 µs (IQR 1 µs)", 7.7e-5),
         ("1.00x [0.98, 1.01], within noise", 1.0)],
        [("sgd", None), ("—", 1e300), ("78 µs", 7.8e-5), ("0.99x", 0.99)]])
    page = html_table(table)
    assert "0.912 <span class=spread>[0.905, 0.919]</span>" in page
    assert "77 µs <span class=spread>(IQR 1 µs)</span>" in page
    assert ("1.00x <span class=spread>[0.98, 1.01],</span> <span class=spread>within noise"
            "</span>") in page
    assert "<td class=label>adam &lt;b&gt;</td>" in page
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", page)
    assert heads == table.header
    assert '<th title="click to sort" class=label>optimizer</th>' in page
    assert '<th title="click to sort">accuracy</th>' in page
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page)
    assert [re.sub(r"<[^>]+>", "", c).replace("&lt;", "<").replace("&gt;", ">") for c in cells] \
        == [text for row in table.rows for text, _ in row]  # the words as they were


def test_the_terminal_summary_uses_the_reports_aliases_with_their_key():
    """The summary's optimizer column cut a long label mid-number ('optax:adam(learning_rate=0')
    where the report showed its alias and a key."""
    from rich.console import Console

    from bench.report.summary import summary_table

    long = "adam(b1=0.91, b2=0.999, eps=1e-08, learning_rate=0.003)"
    runs = pd.DataFrame(seed_rows("a", "adam", long, "oneshot", [0.6, 0.62], {"b1": 0.91})
                        + seed_rows("b", "sgd", "sgd", "oneshot", [0.4, 0.41], {}))
    console = Console(width=100, record=True, markup=False, highlight=False)
    console.print(summary_table(runs))
    text = console.export_text()
    assert "adam·1" in text and "Key: the short names in the plots and tables" in text
    assert text.count("learning_rate=0.003") == 1, text  # once, whole, in the key only
    plain = Console(width=100, record=True)
    plain.print(summary_table(runs[runs["optimizer"] == "sgd"]))
    assert "Key:" not in plain.export_text()  # no alias, no key
