"""spherenet.experiments: grids, tidy results, summaries, CSV, plots, executors, resuming."""

import json
import math
import pickle
import warnings

import numpy as np
import pytest

from spherenet.experiments import (COLUMNS, PROBLEMS, Budget, OptimizerSpec, ProblemSpec, Results,
                                   SerialExecutor, StrategySpec, build_grid, compare)
from spherenet.experiments import runner
from spherenet.experiments.networks import network_available

NUMERIC = ("iteration", "cost", "grad_norm", "violation", "distance", "gap", "accuracy")
RAYLEIGH = ProblemSpec("rayleigh", n=12)


def small_grid(**kwargs):
    """rayleigh(n=12) x riemannian, projection, reparam x rsgd, cg x 3 seeds, 25 iterations."""
    options = dict(problems=RAYLEIGH, strategies=["riemannian", "projection", "reparam"],
                   optimizers=["rsgd", "cg"], seeds=3, budget=25, executor="serial",
                   progress=False)
    options.update(kwargs)
    return compare(**options)


@pytest.fixture(scope="module")
def results():
    return small_grid()


def traces(results, names=NUMERIC):
    """Run identity -> the run's numeric columns (everything but time)."""
    return {(r["problem"], r["strategy"], r["optimizer"], r["seed"]):
            {name: r["columns"][name] for name in names} for r in results.runs}


def assert_same_traces(a, b):
    ta, tb = traces(a), traces(b)
    assert list(ta) == list(tb)
    for key in ta:
        for name in NUMERIC:
            np.testing.assert_array_equal(ta[key][name], tb[key][name], err_msg=f"{key} {name}")


# --- the tidy table -------------------------------------------------------------------------------


def test_tidy_columns_and_row_counts(results):
    assert results.columns == COLUMNS == (
        "problem", "strategy", "optimizer", "seed", "iteration", "time", "cost", "grad_norm",
        "violation", "distance", "gap", "accuracy")
    assert len(results.runs) == 1 * 3 * 2 * 3
    table = results.table()
    assert set(table) == set(COLUMNS) and all(len(v) == len(results) for v in table.values())
    for run in results.runs:
        n = len(run["columns"]["iteration"])
        np.testing.assert_array_equal(run["columns"]["iteration"], np.arange(n))
        if run["optimizer"] == "rsgd":  # gtol 1e-10 is out of reach in 25 steps
            assert n == 25 + 1 and run["status"] == 1
        else:
            assert 2 <= n <= 26
    assert len(results) == sum(len(r["columns"]["iteration"]) for r in results.runs)
    # One row per run per iteration, identified by the four identity columns.
    keys = set(zip(table["problem"], table["strategy"], table["optimizer"], table["seed"],
                   table["iteration"]))
    assert len(keys) == len(results)
    assert set(table["problem"]) == {"rayleigh(n=12)"}
    assert set(table["seed"]) == {0, 1, 2}
    # Rayleigh: distance and gap known; no accuracy; the starting point is on the sphere.
    assert np.all(np.isfinite(table["distance"])) and np.all(np.isfinite(table["gap"]))
    assert np.all(np.isnan(table["accuracy"]))
    np.testing.assert_allclose(table["gap"], table["cost"] - PROBLEMS["rayleigh"].build(n=12).optimum,
                               rtol=0, atol=1e-12)
    assert np.all(table["gap"] >= -1e-12) and np.all(table["violation"] < 1e-14)


def test_to_pandas_has_the_tidy_columns(results):
    pd = pytest.importorskip("pandas")
    frame = results.to_pandas()
    assert list(frame.columns) == list(COLUMNS) and len(frame) == len(results)
    counts = frame.groupby(["strategy", "optimizer", "seed"]).size()
    assert len(counts) == 18
    rsgd = frame[frame.optimizer == "rsgd"].groupby(["strategy", "seed"]).size()
    assert set(rsgd) == {26}
    assert pd.api.types.is_integer_dtype(frame["iteration"])


def test_every_strategy_and_optimizer_starts_from_the_seeds_point(results):
    table = results.table()
    start = table["iteration"] == 0
    for seed in range(3):
        rows = start & (table["seed"] == seed)
        assert rows.sum() == 6
        # The same x0: its distance to the answer is computed from x0 itself.
        assert len(set(table["distance"][rows])) == 1
        exact = rows & (table["strategy"] != "reparam")
        for name in ("cost", "grad_norm"):
            assert len(set(table[name][exact])) == 1, (seed, name, table[name][exact])
            # reparam evaluates f at v / ||v|| with v = x0: the same point up to rounding.
            np.testing.assert_allclose(table[name][rows], table[name][exact][0],
                                       rtol=8 * np.finfo(float).eps, atol=0)
    first = [table["cost"][start & (table["seed"] == seed)][0] for seed in range(3)]
    assert len(set(first)) == 3  # and the seeds do differ


def test_the_strategies_differ_after_the_start(results):
    # Same start, different paths: otherwise the comparison would compare nothing.
    runs = {(r["strategy"], r["optimizer"], r["seed"]): r["columns"]["cost"] for r in results.runs}
    assert runs[("riemannian", "rsgd", 0)][5] != runs[("projection", "rsgd", 0)][5]


# --- summary --------------------------------------------------------------------------------------


def test_summary_matches_a_hand_computation_on_the_tidy_table(results):
    tol = 1e-3
    summary = results.summary(tol=tol)
    table = results.table()
    assert len(summary) == 6
    for row in summary:
        assert row["measure"] == "distance" and row["tol"] == tol and row["runs"] == 3
        iterations, times, violations, distances = [], [], [], []
        for seed in range(3):
            mask = ((table["strategy"] == row["strategy"]) & (table["optimizer"] == row["optimizer"])
                    & (table["seed"] == seed))
            distance = table["distance"][mask]
            hit = [i for i, d in enumerate(distance) if d <= tol]
            iterations.append(table["iteration"][mask][hit[0]] if hit else math.inf)
            times.append(table["time"][mask][hit[0]] if hit else math.inf)
            violations.append(table["violation"][mask][-1])
            distances.append(distance[-1])
        assert row["reached"] == sum(math.isfinite(i) for i in iterations)
        for stat, values in (("iterations", iterations), ("time", times),
                             ("final_violation", violations), ("final_distance", distances)):
            assert row[f"{stat}_median"] == sorted(values)[1]
            assert row[f"{stat}_min"] == min(values) and row[f"{stat}_max"] == max(values)
    # cg gets there on this problem under riemannian.
    assert summary.row("rayleigh(n=12)", "riemannian", "cg")["reached"] == 3


def test_summary_on_a_hand_made_table():
    def run(strategy, seed, distance, violation, time):
        n = len(distance)
        return {"problem": "p", "strategy": strategy, "optimizer": "rsgd", "seed": seed,
                "status": 1, "message": "",
                "columns": {"iteration": np.arange(n), "time": np.asarray(time, float),
                            "cost": np.zeros(n), "grad_norm": np.ones(n),
                            "violation": np.asarray(violation, float),
                            "distance": np.asarray(distance, float), "gap": np.full(n, np.nan),
                            "accuracy": np.full(n, np.nan)}}

    results = Results([
        run("a", 0, [1.0, 0.5, 0.05, 0.01], [0, 0, 0, 1e-16], [0.0, 1.0, 2.0, 3.0]),
        run("a", 1, [1.0, 0.09, 0.01], [0, 0, 3e-16], [0.0, 0.5, 1.0]),
        run("a", 2, [1.0, 0.9, 0.8], [0, 0, 2e-16], [0.0, 0.1, 0.2]),
        run("b", 0, [1.0, 0.2], [0.5, 0.25], [0.0, 4.0]),
    ])
    summary = results.summary(tol=0.1)
    a, b = summary.row("p", "a", "rsgd"), summary.row("p", "b", "rsgd")
    # seeds reach 0.1 at iterations 2, 1, never (inf): median 2, min 1, max inf
    assert (a["reached"], a["runs"]) == (2, 3)
    assert (a["iterations_median"], a["iterations_min"], a["iterations_max"]) == (2, 1, math.inf)
    assert (a["time_median"], a["time_min"], a["time_max"]) == (2.0, 0.5, math.inf)
    assert (a["final_violation_median"], a["final_violation_max"]) == (2e-16, 3e-16)
    assert (a["final_distance_median"], a["final_distance_min"]) == (0.01, 0.01)
    assert b["reached"] == 0 and b["iterations_median"] == math.inf
    assert b["final_violation_median"] == 0.25
    text = str(summary)
    assert "2 [1, never]" in text and "2/3" in text and "0/1" in text
    # measure and tolerance per problem
    assert results.summary(measure="grad_norm", tol=1.0)[0]["iterations_median"] == 0
    with pytest.raises(ValueError, match="measure must be one of"):
        results.summary(measure="speed")


def test_summary_csv_and_format(results, tmp_path):
    summary = results.summary()
    path = summary.to_csv(tmp_path / "summary.csv")
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + len(summary)
    assert lines[0].startswith("problem,strategy,optimizer,measure,tol,runs,reached,iterations_median")
    text = summary.format()
    assert len(text) == 2 + len(summary) and "iterations to tol" in text[0]


# --- CSV ------------------------------------------------------------------------------------------


def test_csv_round_trip_is_exact(results, tmp_path):
    path = results.to_csv(tmp_path / "out" / "results.csv")
    back = Results.from_csv(path)
    assert [r["problem"] for r in back.runs] == [r["problem"] for r in results.runs]
    a, b = results.table(), back.table()
    for name in COLUMNS:
        if name in ("problem", "strategy", "optimizer"):
            assert list(a[name]) == list(b[name])
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # NaN == NaN here
    assert not list(tmp_path.glob("out/.*.tmp"))  # the temporary file was renamed


def test_csv_reads_in_pandas(results, tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(results.to_csv(tmp_path / "r.csv"))
    expected = results.to_pandas()
    assert list(frame.columns) == list(COLUMNS)
    np.testing.assert_array_equal(frame["cost"].to_numpy(), expected["cost"].to_numpy())
    assert frame["accuracy"].isna().all()


def test_from_csv_rejects_other_tables(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a spherenet results table"):
        Results.from_csv(path)


# --- plots ----------------------------------------------------------------------------------------


def test_plots_are_written_as_png_and_svg(results, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    paths = results.plot(tmp_path / "plots")
    assert [p.name for p in paths] == ["rayleigh_n=12.png", "rayleigh_n=12.svg"]
    png, svg = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = svg.read_text()
    assert "<svg" in text and text.count("<path") > 50 and svg.stat().st_size > 20_000
    assert not list(png.parent.glob(".*.tmp"))


def test_plot_panels_and_lines(results):
    pytest.importorskip("matplotlib")
    from spherenet.experiments import plot_problem

    figure = plot_problem(results, "rayleigh(n=12)")
    axes = figure.axes
    assert len(axes) == 3
    assert [ax.get_yscale() for ax in axes] == ["log", "log", "log"]
    assert axes[0].get_xlabel() == "iteration" and axes[1].get_xlabel() == "time (s)"
    labels = [line.get_label() for line in axes[0].get_lines()]
    assert labels == [f"{o} / {s}" for s in ("riemannian", "projection", "reparam")
                      for o in ("rsgd", "cg")]
    with pytest.raises(ValueError, match="no runs of problem"):
        plot_problem(results, "thomson")


# --- executors ------------------------------------------------------------------------------------


def test_process_pool_gives_the_same_traces_as_serial(results):
    pooled = small_grid(executor="processes", workers=2)
    assert pooled.executed == len(results.runs)
    assert_same_traces(results, pooled)


def test_thread_pool_and_an_executor_instance_give_the_same_traces(results):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        threaded = small_grid(executor=pool)
        assert not pool._shutdown  # an executor passed in is left open
    assert_same_traces(results, threaded)


def test_dask_local_cluster_gives_the_same_results_as_a_local_run(results):
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                      dashboard_address=None) as cluster:
            with distributed.Client(cluster) as client:
                on_dask = small_grid(executor=client.get_executor())
    assert on_dask.executed == len(results.runs)
    assert_same_traces(results, on_dask)


def test_runs_are_picklable_plain_data():
    runs, skipped = build_grid(RAYLEIGH, ["riemannian"], [OptimizerSpec("rsgd", lr=0.2)], [4], 10)
    assert skipped == [] and len(runs) == 1
    run = runs[0]
    back = pickle.loads(pickle.dumps(run))
    assert back == run and back.key() == run.key()
    assert run.problem == ProblemSpec("rayleigh", n=12, gap=0.2, instance=0)  # defaults filled in
    assert run.optimizer.params == {"lr": 0.2} and run.optimizer_label == "rsgd(lr=0.2)"
    other, _ = build_grid(RAYLEIGH, ["riemannian"], [OptimizerSpec("rsgd", lr=0.3)], [4], 10)
    assert other[0].key() != run.key()
    record = runner.execute(run)
    text = json.dumps(record)  # JSON-able as it is, floats exactly
    assert json.dumps(json.loads(text)) == text
    assert record["status"] == 1 and len(record["columns"]["cost"]) == 11


def test_progress_bar_over_the_grid(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    small_grid(strategies="riemannian", optimizers="cg", seeds=2, progress=True)
    assert "runs:   0%|          | 0/2" in capsys.readouterr().err  # a tqdm bar on stderr
    calls = []
    real = runner.progress_bar

    def spy(total, enabled):
        bar = real(total, False)
        calls.append([total, enabled, 0])
        bar.update = lambda n=1: calls[-1].__setitem__(2, calls[-1][2] + n)
        return bar

    monkeypatch.setattr(runner, "progress_bar", spy)
    small_grid(strategies="riemannian", optimizers="cg", seeds=2, progress=True)
    assert calls == [[2, True, 2]]  # one tick per finished run


def test_labels_keep_float_parameters_apart():
    assert ProblemSpec("rayleigh", gap=0.1234567).label == "rayleigh(gap=0.1234567)"
    runs, _ = build_grid([ProblemSpec("rayleigh", n=5, gap=0.3), ProblemSpec("rayleigh", n=5)],
                         "riemannian", "cg", 1, 3)
    assert [r.problem_label for r in runs] == ["rayleigh(gap=0.3, n=5)", "rayleigh(n=5)"]
    with pytest.raises(ValueError, match="two problems have the same label"):
        build_grid(["rayleigh", "rayleigh"], "riemannian", "cg", 1, 3)


# --- strategies with options ----------------------------------------------------------------------

EXP_VS_PROJECTION = ["riemannian", StrategySpec("riemannian", retraction="projection"),
                     "projection"]
RETRACTION_LABEL = "riemannian(retraction='projection')"


def test_strategy_spec_labels_equality_and_pickling():
    spec = StrategySpec("riemannian", retraction="projection")
    assert spec.label == RETRACTION_LABEL and spec.params == {"retraction": "projection"}
    assert StrategySpec("riemannian").label == "riemannian"  # plain names keep their labels
    assert StrategySpec("penalty", mu=10.0).label == "penalty(mu=10.0)"
    assert StrategySpec.coerce("projection") == StrategySpec("projection")
    assert StrategySpec.coerce(("riemannian", {"retraction": "projection"})) == spec
    assert StrategySpec.coerce(spec) is spec
    assert len({spec, StrategySpec("riemannian", retraction="projection"),
                StrategySpec("riemannian")}) == 2
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and hash(back) == hash(spec) and back.label == spec.label
    assert spec != OptimizerSpec("riemannian", retraction="projection")


def test_parse_strategy():
    from spherenet.experiments.specs import parse_strategy

    assert parse_strategy("riemannian") == StrategySpec("riemannian")
    assert parse_strategy("riemannian:retraction=projection+transport=parallel") == StrategySpec(
        "riemannian", retraction="projection", transport="parallel")
    assert parse_strategy("riemannian:retraction=projection;transport=parallel") == StrategySpec(
        "riemannian", retraction="projection", transport="parallel")
    assert parse_strategy("penalty:mu=10").params == {"mu": 10}
    assert parse_strategy("penalty:mu=1e+3").params == {"mu": 1000.0}  # '+' of an exponent
    for bad, message in (("penalty:", "expected KEY=VALUE"), ("penalty:mu", "expected KEY=VALUE"),
                         (":mu=1", "expected NAME"), ("penalty:mu=1+mu=2", "'mu' is given twice")):
        with pytest.raises(ValueError, match=message):
            parse_strategy(bad)


@pytest.fixture(scope="module")
def retractions():
    """rayleigh(n=12) x exp map, projection retraction, projection x rsgd x 2 seeds."""
    return compare(RAYLEIGH, EXP_VS_PROJECTION, "rsgd", seeds=2, budget=15, executor="serial",
                   progress=False)


def test_exp_map_against_projection_retraction_against_projection(retractions):
    labels = ["riemannian", RETRACTION_LABEL, "projection"]
    assert retractions.strategies == labels
    assert len(retractions.runs) == 3 * 2
    assert list(dict.fromkeys(retractions.table()["strategy"])) == labels
    summary = retractions.summary()
    assert [row["strategy"] for row in summary] == labels
    assert summary.row("rayleigh(n=12)", RETRACTION_LABEL, "rsgd")["runs"] == 2
    runs = {(r["strategy"], r["seed"]): r["columns"] for r in retractions.runs}
    for seed in (0, 1):
        exp, retraction = runs[("riemannian", seed)], runs[(RETRACTION_LABEL, seed)]
        for name in ("cost", "distance", "grad_norm"):  # the same x0 ...
            assert exp[name][0] == retraction[name][0] == runs[("projection", seed)][name][0]
        # ... and other paths from the first step on
        assert np.all(exp["cost"][1:] != retraction["cost"][1:])
        assert np.all(exp["distance"][1:] != retraction["distance"][1:])
        # both keep the iterates on the sphere
        assert max(exp["violation"]) < 1e-14 and max(retraction["violation"]) < 1e-14


def test_the_run_key_holds_the_strategy_options():
    strategies = EXP_VS_PROJECTION + [StrategySpec("riemannian", retraction="exp"),
                                      ("penalty", {"mu": 1.0}), ("penalty", {"mu": 10.0})]
    runs, _ = build_grid(RAYLEIGH, strategies, "rsgd", [0], 10)
    assert len({run.key() for run in runs}) == len(runs) == 6
    assert [run.strategy_label for run in runs] == [
        "riemannian", RETRACTION_LABEL, "projection", "riemannian(retraction='exp')",
        "penalty(mu=1.0)", "penalty(mu=10.0)"]
    described = runs[1].describe()
    assert described["strategy"] == RETRACTION_LABEL
    assert (described["strategy_name"], described["strategy_options"]) == (
        "riemannian", {"retraction": "projection"})
    # A strategy by name is described as before options existed: stored runs keep their keys.
    assert set(runs[0].describe()) == {
        "problem", "problem_name", "problem_params", "strategy", "optimizer", "optimizer_name",
        "optimizer_options", "seed", "budget"}
    assert runs[0].strategy == StrategySpec("riemannian")
    back = pickle.loads(pickle.dumps(runs[1]))
    assert back == runs[1] and back.key() == runs[1].key()


def test_resume_tells_strategy_options_apart(retractions, tmp_path):
    first = compare(RAYLEIGH, EXP_VS_PROJECTION[:2], "rsgd", seeds=2, budget=15, out=tmp_path,
                    executor="serial", progress=False)
    assert (first.executed, first.reused) == (4, 0)
    assert len(list((tmp_path / "runs").glob("*.json"))) == 4
    again = compare(RAYLEIGH, EXP_VS_PROJECTION, "rsgd", seeds=2, budget=15, out=tmp_path,
                    executor="serial", progress=False)
    assert (again.executed, again.reused) == (2, 4)  # only projection is new
    assert_same_traces(retractions, again)
    other = compare(RAYLEIGH, [StrategySpec("riemannian", retraction="projection",
                                            transport="parallel")],
                    "rsgd", seeds=2, budget=15, out=tmp_path, executor="serial", progress=False)
    assert (other.executed, other.reused) == (2, 0)  # other options: other runs
    loaded = Results.load(tmp_path)
    assert sorted(loaded.strategies) == sorted(
        ["riemannian", RETRACTION_LABEL, "projection",
         "riemannian(retraction='projection', transport='parallel')"])


def test_penalty_weight_per_cell():
    results = compare(RAYLEIGH, [("penalty", {"mu": 1.0}), StrategySpec("penalty", mu=10.0)], "cg",
                      seeds=2, budget=200, executor="serial", progress=False)
    assert results.strategies == ["penalty(mu=1.0)", "penalty(mu=10.0)"]
    summary = results.summary()
    weak = summary.row("rayleigh(n=12)", "penalty(mu=1.0)", "cg")
    strong = summary.row("rayleigh(n=12)", "penalty(mu=10.0)", "cg")
    # The penalized minimizer sits off the sphere by about lambda_max / (4 mu).
    assert 0.1 < weak["final_violation_min"] and strong["final_violation_max"] < 0.05
    assert strong["final_violation_max"] < weak["final_violation_min"]
    for seed in (0, 1):
        a, b = (r["columns"] for r in results.select(seed=seed).runs)
        assert a["cost"][0] == b["cost"][0]  # the same x0, on the sphere
        assert a["violation"][-1] > 4 * b["violation"][-1]


def test_plots_keep_strategy_options_apart(retractions):
    pytest.importorskip("matplotlib")
    from spherenet.experiments import plot_problem

    lines = plot_problem(retractions, "rayleigh(n=12)").axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["riemannian", RETRACTION_LABEL, "projection"]
    colors = [line.get_color() for line in lines]
    assert len(set(colors)) == 3 and colors[0] == "C0" and colors[2] == "C1"


def test_network_runs_get_the_strategy_options(monkeypatch):
    available, why = network_available("seed_network")
    if not available:
        pytest.skip(why)
    from spherenet.nn import Sequential

    compiled = []
    real = Sequential.compile

    def spy(self, *args, **kwargs):
        compiled.append((kwargs["strategy"], kwargs["strategy_options"]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Sequential, "compile", spy)
    problem = ProblemSpec("seed_network", n_samples=40, hidden=4, epochs=1)
    results = compare(problem, ["riemannian", ("penalty", {"mu": 0.5})], "rsgd", 1, 3,
                      executor="serial", progress=False)
    assert results.strategies == ["riemannian", "penalty(mu=0.5)"]
    assert ("riemannian", {}) in compiled and ("penalty", {"mu": 0.5}) in compiled


# --- resuming -------------------------------------------------------------------------------------


def test_finished_runs_are_written_and_a_rerun_only_runs_the_missing(results, tmp_path):
    first = small_grid(out=tmp_path)
    files = sorted((tmp_path / "runs").glob("*.json"))
    assert first.executed == len(files) == 18 and first.reused == 0
    for path in files[:3]:
        path.unlink()
    files[3].write_text(files[3].read_text()[:100])  # a file cut short: read as missing
    again = small_grid(out=tmp_path)
    assert (again.executed, again.reused) == (4, 14)
    assert_same_traces(first, again)
    assert_same_traces(results, again)
    third = small_grid(out=tmp_path)
    assert (third.executed, third.reused) == (0, 18)
    # a different budget is a different run: nothing is reused
    assert small_grid(out=tmp_path, budget=5).reused == 0


class _Interrupted(SerialExecutor):
    """Runs ``limit`` runs, then the user presses Ctrl-C."""

    def __init__(self, limit):
        self.limit = limit

    def submit(self, fn, /, *args, **kwargs):
        if self.limit == 0:
            raise KeyboardInterrupt
        self.limit -= 1
        return super().submit(fn, *args, **kwargs)


def test_an_interrupted_grid_keeps_its_finished_runs_and_resumes(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        small_grid(out=tmp_path, executor=_Interrupted(5))
    assert len(list((tmp_path / "runs").glob("*.json"))) == 5
    assert not list((tmp_path / "runs").glob(".*"))  # no temporary file left behind
    resumed = small_grid(out=tmp_path)
    assert (resumed.executed, resumed.reused) == (13, 5)
    assert_same_traces(small_grid(), resumed)
    assert len(Results.load(tmp_path).runs) == 18


def test_an_interrupted_grid_says_how_many_runs_are_saved(tmp_path):
    from spherenet.experiments import GridInterrupted

    with pytest.raises(GridInterrupted):
        small_grid(out=tmp_path, executor=_Interrupted(4), strategies="riemannian")  # 4 of 6
    with pytest.raises(GridInterrupted) as info:
        small_grid(out=tmp_path, executor=_Interrupted(5))  # 4 read back, 5 run, 9 to go
    files = list((tmp_path / "runs").glob("*.json"))
    assert (info.value.saved, info.value.total) == (9, 18) and len(files) == 9
    assert info.value.directory == tmp_path / "runs"
    assert isinstance(info.value, KeyboardInterrupt)  # what Ctrl-C handlers catch
    with pytest.raises(GridInterrupted) as info:
        small_grid(executor=_Interrupted(2))  # no out: nothing is saved
    assert (info.value.saved, info.value.total, info.value.directory) == (0, 18, None)


def assert_same_runs(a, b):
    """The same runs with the same traces, in any order (load reads files by name)."""
    ta, tb = traces(a), traces(b)
    assert sorted(ta) == sorted(tb)
    for key in ta:
        for name in NUMERIC:
            np.testing.assert_array_equal(ta[key][name], tb[key][name], err_msg=f"{key} {name}")


def _tiny(out, budget, seeds=2, strategies=("riemannian", "projection")):
    return compare(RAYLEIGH, list(strategies), "rsgd", seeds=seeds, budget=budget,
                   executor="serial", progress=False, out=out)


def test_load_keeps_the_grids_of_a_folder_apart(tmp_path):
    ten, twenty = _tiny(tmp_path, 10), _tiny(tmp_path, 20, seeds=1)
    # Same labels, two budgets: one table would count rayleigh/riemannian/rsgd/seed 0 twice.
    with pytest.raises(ValueError) as info:
        Results.load(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'runs'} holds the runs of 2 grids, by budget: ")
    assert "maxiter=10 (4 runs), maxiter=20 (2 runs)" in message
    assert "Results.load(directory, budget=...)" in message
    for budget, expected in ((10, ten), (dict(maxiter=20), twenty), (Budget(maxiter=10), ten)):
        loaded = Results.load(tmp_path, budget=budget)
        assert len(loaded.runs) == len(expected.runs)
        assert_same_runs(expected, loaded)
    with pytest.raises(ValueError, match=r"holds no run of the budget maxiter=30; it holds "
                                         r"maxiter=10 \(4 runs\), maxiter=20 \(2 runs\)"):
        Results.load(tmp_path, budget=30)
    # Other settings than maxiter name themselves, and numbers compare as numbers.
    _tiny(tmp_path, dict(maxiter=10, maxtime=60), seeds=1, strategies=["riemannian"])
    with pytest.raises(ValueError, match=r"maxiter=10, maxtime=60 \(1 run\)"):
        Results.load(tmp_path)
    assert len(Results.load(tmp_path, budget=dict(maxiter=10, maxtime=60.0)).runs) == 1


def test_load_of_one_grid_grown_by_resuming_needs_no_budget(tmp_path):
    _tiny(tmp_path, 10, strategies=["riemannian"])
    both = _tiny(tmp_path, 10)  # one more strategy, same budget: the same grid, grown
    assert_same_runs(both, Results.load(tmp_path))
    assert len(Results.load(tmp_path / "empty").runs) == 0


def test_load_skips_files_that_are_not_runs_and_names_them(tmp_path):
    expected = _tiny(tmp_path, 10)
    runs = tmp_path / "runs"
    (runs / "notes.json").write_text("not JSON {")
    (runs / "list.json").write_text("[1, 2]")
    (runs / "settings.json").write_text(json.dumps({"format": 1, "theme": "dark"}))
    (runs / "old.json").write_text(json.dumps({"format": 0, "run": {}, "columns": {}}))
    with pytest.warns(UserWarning) as caught:
        loaded = Results.load(tmp_path)
    assert_same_runs(expected, loaded)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 4
    assert messages[0].startswith(f"skipped {runs / 'list.json'}: not a spherenet run file "
                                  "(a JSON list, not an object)")
    assert messages[1].startswith(f"skipped {runs / 'notes.json'}: not a readable JSON file (")
    assert messages[2] == (f"skipped {runs / 'old.json'}: not a spherenet run file "
                           "(format 0, expected 1)")
    assert messages[3] == (f"skipped {runs / 'settings.json'}: not a spherenet run file "
                           "(no run description)")


def test_a_run_that_raises_is_reported_and_not_stored(tmp_path, monkeypatch):
    real = runner._minimize

    def flaky(problem, run):
        if run.strategy_label == "projection" and run.seed == 1:
            raise RuntimeError("boom")
        return real(problem, run)

    monkeypatch.setattr(runner, "_minimize", flaky)
    with pytest.warns(UserWarning, match="2 of 18 runs raised; the first: RuntimeError: boom"):
        partial = small_grid(out=tmp_path)
    assert len(partial.runs) == 16 and len(partial.failed) == 2
    assert len(list((tmp_path / "runs").glob("*.json"))) == 16
    monkeypatch.setattr(runner, "_minimize", real)
    assert small_grid(out=tmp_path).executed == 2


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    (dict(problems="rayleight"), r"unknown problem 'rayleight'; choose from \[.*'rayleigh'.*'thomson'"),
    (dict(strategies=["riemannian", "retraction"]),
     r"unknown strategy 'retraction'; choose from \[.*'projection'.*'riemannian'"),
    (dict(optimizers="adam"), r"unknown optimizer 'adam'; choose from \[.*'radam'.*'rsgd'"),
    (dict(problems=("rayleigh", {"size": 3})), r"unknown parameter\(s\) \['size'\] of problem "
                                               r"'rayleigh'; it takes \['gap', 'instance', 'n'\]"),
    (dict(optimizers=OptimizerSpec("rsgd", beta=0.9)),
     r"unknown option\(s\) \['beta'\] of optimizer 'rsgd'; it takes \[.*'momentum'"),
    (dict(problems=ProblemSpec("rayleigh", n=1)), r"problem rayleigh\(n=1\): n must be"),
    (dict(seeds=0), "seeds must be a positive number"),
    (dict(seeds=[1, 1]), "seeds must be distinct"),
    (dict(strategies=[]), "give at least one strategy"),
    (dict(budget=-3), "budget maxiter must be an integer >= 0"),
    (dict(budget={"iterations": 3}), r"unknown budget field\(s\) \['iterations'\]"),
    (dict(executor="cluster"), r"unknown executor 'cluster'; choose from \['serial'"),
    (dict(strategies=StrategySpec("riemannian", mu=1.0)),
     r"unknown option\(s\) \['mu'\] of strategy 'riemannian'; "
     r"it takes \['retraction', 'transport'\]"),
    (dict(strategies=("reparam", {"epsilon": 0.1})),
     r"unknown option\(s\) \['epsilon'\] of strategy 'reparam'; it takes no options"),
    (dict(strategies=("riemannian", {"retraction": "geodesic"})),
     r"strategy riemannian\(retraction='geodesic'\): retraction must be one of \['exp'"),
    (dict(strategies=("penalty", {"mu": -1.0})),
     r"strategy penalty\(mu=-1.0\): mu must be positive"),
    (dict(strategies=[("penalty", {"mu": 10}), StrategySpec("penalty", mu=10.0)]),
     "strategies must be distinct"),
    (dict(strategies=[3]), r"a strategy must be a name, a \(strategy name, .*\) pair or a"),
])
def test_bad_input_is_a_value_error_naming_the_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_grid(**kwargs)


def test_solvers_on_networks_are_skipped_with_a_reason():
    available, _ = network_available("seed_network")
    problem = ProblemSpec("seed_network", n_samples=40, hidden=8, epochs=1)
    with pytest.warns(UserWarning, match="seed_network.* with cg: networks are trained by step rules"):
        results = compare([RAYLEIGH, problem], "riemannian", ["cg", "rsgd"], 1, 3,
                          executor="serial", progress=False)
    expected = {("rayleigh(n=12)", "cg"), ("rayleigh(n=12)", "rsgd")}
    if available:
        expected.add((problem.label, "rsgd"))
    assert {(r["problem"], r["optimizer"]) for r in results.runs} == expected
    with pytest.raises(ValueError, match="nothing to run"):
        with pytest.warns(UserWarning):
            compare(problem, "riemannian", "cg", 1, 3, executor="serial")


# --- networks ----------------------------------------------------------------------------------


def test_network_training_rows():
    available, why = network_available("seed_network")
    if not available:
        pytest.skip(why)
    problem = ProblemSpec("seed_network", n_samples=120, hidden=16, epochs=4)
    results = compare(problem, ["riemannian", "projection", "none"], "rsgd", 2,
                      Budget(epochs=3), executor="serial", progress=False)
    table = results.table()
    assert len(results.runs) == 6 and len(results) == 6 * 4  # the budget's 3 epochs + epoch 0
    for seed in (0, 1):
        first = (table["iteration"] == 0) & (table["seed"] == seed)
        assert len(set(table["cost"][first])) == 1  # same initial weights for every strategy
    assert np.all((table["accuracy"] >= 0) & (table["accuracy"] <= 1))
    assert np.all(np.isnan(table["grad_norm"])) and np.all(np.isnan(table["distance"]))
    by_strategy = {r["strategy"]: r["columns"] for r in results.runs if r["seed"] == 0}
    assert by_strategy["riemannian"]["cost"][-1] < by_strategy["riemannian"]["cost"][0]
    assert max(by_strategy["riemannian"]["violation"]) <= 1e-6  # float32
    assert by_strategy["none"]["violation"][-1] > 1e-3  # the baseline drifts off the sphere
    summary = results.summary()
    assert summary[0]["measure"] == "cost" and summary[0]["tol"] == PROBLEMS["seed_network"].tol


def test_an_unavailable_network_is_skipped_with_its_reason(monkeypatch):
    from spherenet.experiments import networks

    monkeypatch.setattr(networks, "network_available",
                        lambda name=None: (False, "spherenet.nn is not importable (test)"))
    with pytest.warns(UserWarning, match=r"skipped seed_network: spherenet.nn is not importable"):
        results = compare(["rayleigh", "seed_network"], "riemannian", "rsgd", 1, 3,
                          executor="serial", progress=False)
    assert results.problems == ["rayleigh"]
    assert results.skipped == ["seed_network: spherenet.nn is not importable (test)"]


def test_summary_without_a_known_optimum_uses_the_gradient_norm():
    # Thomson with 24 points has no stored optimum: the summary falls back on
    # the gradient norm, and must report its final value per run.
    results = compare([ProblemSpec("thomson", n_points=24)], ["riemannian"], ["cg"], seeds=[0],
                      budget=5, executor="serial")
    (row,) = results.summary().rows
    assert row["measure"] == "grad_norm"
    table = results.table()
    assert row["final_grad_norm_median"] == table["grad_norm"][-1]
    assert "final grad_norm" in str(results.summary())
