"""Measured rates, paired statistics, step-size sweeps and predictions in the experiments harness."""

import math

import numpy as np
import pytest
from scipy import stats

from spherenet.cli import main
from spherenet.experiments import (OptimizerSpec, Results, build_grid, compare, fit_rate,
                                   paired_comparison, plot_stability, predicted_limits,
                                   predicted_rates, stability)
from spherenet.experiments.problems import build_problem, resolve
from spherenet.experiments.stability import split_lr

EPS = np.finfo(np.float64).eps


# --- fit_rate ----------------------------------------------------------------------------------


def test_fit_rate_of_a_geometric_sequence_and_its_window():
    values = 2.0 * 0.9 ** np.arange(100.0)
    fit = fit_rate(values)
    assert (fit.start, fit.stop) == (50, 100)
    assert fit.rate == pytest.approx(0.9, rel=100 * EPS)


def test_fit_rate_uses_the_asymptotic_half_only():
    # fast for 30 steps, then slow: the second half of the run sees only the slow phase
    k = np.arange(120.0)
    values = np.where(k < 30, 0.5 ** k, 0.5 ** 30 * 0.95 ** (k - 30))
    assert fit_rate(values).rate == pytest.approx(0.95, rel=100 * EPS)
    # the whole run would mix both phases
    slope = np.polyfit(k, np.log(values), 1)[0]
    assert abs(np.exp(slope) - 0.95) > 0.01


def test_fit_rate_stops_at_machine_precision_and_at_non_finite_values():
    k = np.arange(200.0)
    values = np.maximum(0.8 ** k, 1e-16 * (1 + 0.5 * np.sin(k)))  # rounding noise below 1e-16
    fit = fit_rate(values)
    floor = 1e3 * EPS  # relative to values[0] = 1
    assert fit.stop == int(np.argmax(values <= floor))
    assert fit.rate == pytest.approx(0.8, rel=1e-12)
    diverging = np.r_[1.1 ** np.arange(40.0), np.inf, np.nan]
    fit = fit_rate(diverging)
    assert fit.stop == 40 and fit.rate == pytest.approx(1.1, rel=1e-12)
    assert fit_rate(diverging, floor=0.0).stop == 40
    assert fit_rate(values, floor=1e-6).stop == int(np.argmax(values <= 1e-6))


def test_fit_rate_without_enough_points():
    assert math.isnan(fit_rate([1.0, 0.5, 0.25]).rate)
    assert math.isnan(fit_rate([]).rate)
    assert math.isnan(fit_rate([0.0, 0.0]).rate)
    with pytest.raises(ValueError, match="min_points must be an integer >= 2"):
        fit_rate([1.0], min_points=1)
    with pytest.raises(ValueError, match="floor must be >= 0"):
        fit_rate([1.0], floor=-1.0)


# --- paired comparison -------------------------------------------------------------------------


def test_paired_comparison_against_scipy():
    rng = np.random.default_rng(0)
    b = rng.integers(50, 100, 12).astype(float)
    a = np.round(b * 1.3 * np.exp(rng.normal(0, 0.1, 12)))
    result = paired_comparison(a, b, n_resamples=20000, rng=1)
    expected = stats.wilcoxon(a, b)
    assert result["statistic"] == expected.statistic
    assert result["pvalue"] == pytest.approx(expected.pvalue, rel=1e-12)
    log_ratio = np.log(a / b)
    assert result["ratio"] == pytest.approx(np.exp(log_ratio.mean()), rel=8 * EPS)
    reference = stats.bootstrap((log_ratio,), np.mean, n_resamples=20000, method="percentile",
                                confidence_level=0.95, rng=np.random.default_rng(2))
    # two Monte Carlo estimates of the same quantiles: they agree to about 1e-3 in the log
    low, high = reference.confidence_interval
    assert math.log(result["ci_low"]) == pytest.approx(low, abs=5e-3)
    assert math.log(result["ci_high"]) == pytest.approx(high, abs=5e-3)
    assert result["ci_low"] < 1.3 < result["ci_high"]
    assert result["note"] == ""
    # seeded: the same interval again
    assert paired_comparison(a, b, n_resamples=20000, rng=1)["ci_low"] == result["ci_low"]


def test_paired_comparison_on_constructed_data():
    b = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0])
    result = paired_comparison(2 * b, b)
    assert result["ratio"] == pytest.approx(2.0, rel=4 * EPS)
    assert result["ci_low"] == result["ci_high"] == result["ratio"]  # no spread to resample
    # all differences positive: W = 0, exact two-sided p = 2 / 2^7
    assert result["statistic"] == 0.0 and result["pvalue"] == pytest.approx(2.0 / 2 ** 7)
    few = paired_comparison(b[:4] + 1, b[:4])
    assert few["pvalue"] == pytest.approx(2.0 / 2 ** 4)
    assert "smallest possible p-value is 0.125" in few["note"]


def test_paired_comparison_ties_censoring_and_too_few_pairs():
    tie = paired_comparison([5, 7, 9], [5, 7, 9])
    assert tie["ratio"] == 1.0 and math.isnan(tie["pvalue"])
    assert "all pairs tie" in tie["note"]
    censored = paired_comparison([10, np.inf, 12, 14, np.inf], [20, 30, np.inf, 28, np.inf])
    assert (censored["pairs"], censored["excluded"]) == (2, 3)
    assert (censored["a_only"], censored["b_only"]) == (1, 1)
    assert censored["ratio"] == pytest.approx(0.5, rel=4 * EPS)
    assert "only a reached the tolerance on 1 seed" in censored["note"]
    one = paired_comparison([3, np.inf], [6, 5])
    assert one["pairs"] == 1 and math.isnan(one["ci_low"]) and "one pair" in one["note"]
    none = paired_comparison([np.inf], [np.inf])
    assert math.isnan(none["ratio"]) and "no seed where both" in none["note"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(a=[1, 2], b=[1]), "must be paired"),
    (dict(a=[1, np.nan], b=[1, 2]), "NaN or a negative"),
    (dict(a=[1, -2], b=[1, 2]), "NaN or a negative"),
    (dict(a=[1, 2], b=[1, 2], confidence=1.0), r"confidence must be in \(0, 1\)"),
    (dict(a=[1, 2], b=[1, 2], n_resamples=10), "n_resamples must be an integer >= 100"),
])
def test_paired_comparison_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        paired_comparison(**kwargs)


def _run(strategy, seed, distance):
    n = len(distance)
    return {"problem": "p", "strategy": strategy, "optimizer": "rsgd", "seed": seed, "status": 1,
            "message": "",
            "columns": {"iteration": np.arange(n), "time": np.arange(n, dtype=float),
                        "cost": np.zeros(n), "grad_norm": np.ones(n), "violation": np.zeros(n),
                        "distance": np.asarray(distance, float), "gap": np.full(n, np.nan),
                        "accuracy": np.full(n, np.nan)}}


def test_summary_rates_and_comparisons_on_a_hand_made_table():
    k = np.arange(80.0)
    runs = [_run("a", s, (0.5 + 0.1 * s) ** k) for s in range(6)]
    runs += [_run("b", s, (0.7 + 0.02 * s) ** k) for s in range(6)]
    results = Results(runs)
    summary = results.summary(tol=1e-3)
    row = summary.row("p", "a", "rsgd")
    assert row["rate_min"] == pytest.approx(0.5, rel=1e-12)
    assert row["rate_max"] == pytest.approx(1.0, rel=1e-12)
    assert row["rate_median"] == pytest.approx(0.75, rel=1e-12)
    (comparison,) = summary.comparisons
    assert (comparison["strategy"], comparison["baseline"]) == ("b", "a")
    first = [float(np.argmax((0.5 + 0.1 * s) ** k <= 1e-3)) for s in range(5)]  # seed 5: never
    second = [float(np.argmax((0.7 + 0.02 * s) ** k <= 1e-3)) for s in range(5)]
    assert comparison["pairs"] == 5 and comparison["a_only"] == 1  # b reached, a (seed 5) never
    assert comparison["ratio"] == pytest.approx(np.exp(np.mean(np.log(np.divide(second, first)))))
    assert comparison["pvalue"] == pytest.approx(stats.wilcoxon(second, first).pvalue)
    other = results.summary(tol=1e-3, baseline="b").comparisons[0]
    assert (other["strategy"], other["baseline"]) == ("a", "b")
    assert other["ratio"] == pytest.approx(1.0 / comparison["ratio"], rel=1e-12)
    text = "\n".join(summary.format(("iterations", "rate", "vs_baseline")))
    assert "baseline" in text and f"p {comparison['pvalue']:.2g}" in text
    assert "only a reached" in "\n".join(summary.comparison_notes()) or \
        "only b reached" in "\n".join(summary.comparison_notes())
    with pytest.raises(ValueError, match="baseline must be one of the strategies"):
        results.summary(baseline="c")


# --- step-size sweeps --------------------------------------------------------------------------


def test_lrs_make_the_step_size_a_grid_axis():
    runs, _ = build_grid("rayleigh", ["riemannian", "projection"],
                         ["rsgd", OptimizerSpec("rsgd", momentum=0.5)], seeds=2, lrs=[0.1, 1])
    labels = list(dict.fromkeys(run.optimizer_label for run in runs))
    assert labels == ["rsgd(lr=0.1)", "rsgd(lr=1.0)", "rsgd(lr=0.1, momentum=0.5)",
                      "rsgd(lr=1.0, momentum=0.5)"]
    assert len(runs) == 2 * 4 * 2
    assert {run.optimizer.params["lr"] for run in runs} == {0.1, 1.0}
    assert split_lr("rsgd(lr=1.0, momentum=0.5)") == (1.0, "rsgd(momentum=0.5)")
    assert split_lr("radam(betas=(0.9, 0.99), lr=0.01)") == (0.01, "radam(betas=(0.9, 0.99))")


@pytest.mark.parametrize("lrs, optimizer, error, match", [
    ([0.1, 0.0], "rsgd", ValueError, "lrs must be positive and finite, got 0.0"),
    ([-1.0], "rsgd", ValueError, "positive and finite"),
    ([math.inf], "rsgd", ValueError, "positive and finite"),
    ([], "rsgd", ValueError, "at least one step size"),
    ([0.1, 0.1], "rsgd", ValueError, "lrs must be distinct"),
    ([True], "rsgd", TypeError, "lrs must be numbers"),
    ("0.1", "rsgd", TypeError, "lrs must be a list"),
    ([0.1], "cg", ValueError, "optimizer 'cg' takes no step size"),
    ([0.1], OptimizerSpec("rsgd", lr=0.3), ValueError, "already sets lr"),
    ([0.1], "newton", ValueError, "unknown optimizer 'newton'"),
])
def test_bad_lrs_are_refused(lrs, optimizer, error, match):
    with pytest.raises(error, match=match):
        build_grid("rayleigh", "riemannian", optimizer, seeds=1, lrs=lrs)


# --- predictions beside measurements -----------------------------------------------------------


def _hessian_extremes(gap):
    spec, _, _, _ = resolve(("rayleigh", {"gap": gap}), "riemannian", "rsgd")
    lam = np.linalg.eigvalsh(build_problem(spec).A)
    return 2 * (lam[-1] - lam[-2]), 2 * (lam[-1] - lam[0]), -2 * lam[-1]


def test_predicted_rates_and_limits_against_eigh():
    small, large, radial = _hessian_extremes(0.2)
    rates = predicted_rates(("rayleigh", {"gap": 0.2}), ["riemannian", "projection", "reparam"],
                            ["rsgd", OptimizerSpec("rsgd", momentum=0.5, lr=0.2), "cg"])
    cells = rates["rayleigh(gap=0.2)"]
    assert set(cells) == {("riemannian", "rsgd"), ("projection", "rsgd"),
                          ("riemannian", "rsgd(lr=0.2, momentum=0.5)")}
    lr = 0.5  # the registry's default step size of rsgd on rayleigh
    assert cells["riemannian", "rsgd"] == pytest.approx(
        max(abs(1 - lr * small), abs(1 - lr * large)), rel=1e-10)
    effective = lr / (1 - lr * radial)
    assert cells["projection", "rsgd"] == pytest.approx(
        max(abs(1 - effective * small), abs(1 - effective * large)), rel=1e-10)
    roots = [np.max(np.abs(np.roots([1, -(1.5 - 0.2 * h), 0.5]))) for h in (small, large)]
    assert cells["riemannian", "rsgd(lr=0.2, momentum=0.5)"] == pytest.approx(max(roots), rel=1e-9)
    limits = predicted_limits(("rayleigh", {"gap": 0.2}), ["riemannian", "projection", "reparam",
                                                           "penalty"])
    assert limits == pytest.approx({"riemannian": 2 / large, "projection": math.inf,
                                    "reparam": math.inf}, rel=1e-10)
    assert predicted_rates("thomson", "riemannian", "rsgd") == {"thomson": {}}  # no solution()


@pytest.fixture(scope="module")
def sweep():
    return compare(("rayleigh", {"gap": 0.3}), ["riemannian", "projection", "reparam"], "rsgd",
                   seeds=3, budget=300, executor="serial", lrs=[0.2, 0.6, 2.5])


def test_measured_rates_agree_with_the_predictions(sweep):
    predicted = predicted_rates(("rayleigh", {"gap": 0.3}), ["riemannian", "projection"], "rsgd",
                                lrs=[0.2, 0.6, 2.5])["rayleigh(gap=0.3)"]
    summary = sweep.summary()
    checked = 0
    for (strategy, optimizer), rate in predicted.items():
        row = summary.row("rayleigh(gap=0.3)", strategy, optimizer)
        if rate < 1:
            assert row["rate_min"] == pytest.approx(rate, rel=0.02)
            assert row["rate_max"] == pytest.approx(rate, rel=0.02)
            checked += 1
    assert checked == 5  # riemannian at lr 2.5 is beyond its limit


def test_stability_table_and_plot(sweep):
    small, large, _ = _hessian_extremes(0.3)
    rows = stability(sweep)
    assert [row["lr"] for row in rows] == sorted(row["lr"] for row in rows)
    by_cell = {(row["strategy"], row["lr"]): row for row in rows}
    assert len(by_cell) == 9
    assert 2.5 > 2 / large  # beyond the riemannian limit: never reached, every seed unstable
    unstable = by_cell["riemannian", 2.5]
    assert unstable["iterations_median"] == math.inf and unstable["diverged"] == 3
    for strategy in ("projection", "reparam"):  # no limit: both converge at lr 2.5
        assert by_cell[strategy, 2.5]["reached"] == 3 and by_cell[strategy, 2.5]["diverged"] == 0
    direct = sweep.select(strategy="projection", optimizer="rsgd(lr=0.6)").summary()
    assert by_cell["projection", 0.6]["iterations_median"] == direct[0]["iterations_median"]
    figure = plot_stability(sweep, limits={"riemannian": 2 / large, "projection": math.inf})
    ax = figure.axes[0]
    vertical = [line for line in ax.lines
                if len(line.get_xdata()) == 2 and np.ptp(line.get_xdata()) == 0]
    assert [line.get_xdata()[0] for line in vertical] == [pytest.approx(2 / large)]
    labels = ax.get_legend_handles_labels()[1]
    assert "projection: no predicted limit" in labels and "riemannian" in labels
    with pytest.raises(ValueError, match="no run of 'p' has a step size"):
        stability(Results([_run("a", 0, [1.0, 0.5])]))


# --- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize("value, match", [
    ("0.1,abc", "'abc' is not a number"),
    ("0.1,-1", "got '-1'"),
    ("0,1", "got '0'"),
    ("0.1,,1", "'' is not a number"),
    ("1,1.0", "repeated"),
])
def test_cli_lr_parse_errors_exit_2(value, match, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--lr", value, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--lr" in err and match in err


@pytest.mark.parametrize("extra, match", [
    (["--lr", "0.1", "--set", "lr=0.2"], "already sets lr"),
    (["--lr", "0.1", "--optimizer", "cg"], "takes no step size"),
    (["--baseline", "penalty"], "--baseline must be one of the strategies"),
])
def test_cli_inconsistent_options_exit_2(extra, match, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--out", str(tmp_path), "--no-progress", *extra])
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err


def test_cli_sweep_prints_rates_and_comparisons_and_writes_the_stability_plot(tmp_path, capsys):
    argv = ["compare", "--strategies", "riemannian,projection", "--seeds", "3", "--budget", "150",
            "--lr", "0.5,1.5", "--executor", "serial", "--no-progress", "--out", str(tmp_path),
            "--baseline", "projection"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "predicted rate" in out and "Wilcoxon p" in out
    rows = {(cells[1], cells[2]): cells for cells in
            ([c.strip() for c in line.split("|")] for line in out.splitlines()
             if line.startswith("rayleigh "))}
    assert rows["rsgd(lr=0.5)", "projection"][8] == "baseline"
    assert rows["rsgd(lr=1.5)", "riemannian"][7] == "unstable"  # 1.5 > 2/L = 1.01
    measured = float(rows["rsgd(lr=0.5)", "riemannian"][6].split()[0])  # "median [min, max]"
    assert float(rows["rsgd(lr=0.5)", "riemannian"][7]) == pytest.approx(measured, abs=0.01)
    assert (tmp_path / "plots" / "rayleigh_stability.png").stat().st_size > 10_000


def test_predicted_line_over_the_measured_curves(sweep):
    from matplotlib.figure import Figure

    from spherenet.experiments import plot_problem

    problem = "rayleigh(gap=0.3)"
    predicted = {("riemannian", "rsgd(lr=0.6)"): 0.64, "projection": 0.9,
                 ("riemannian", "rsgd(lr=2.5)"): 3.5}
    figure = plot_problem(sweep, problem, predicted=predicted, figure=Figure())
    lines = {line.get_label(): line for line in figure.axes[0].lines}
    assert "predicted 3.5" not in lines  # no convergence predicted: nothing drawn
    line = lines["predicted 0.64"]
    k, y = line.get_xdata(), line.get_ydata()
    np.testing.assert_allclose(y[1:] / y[:-1], 0.64, rtol=1e-12)
    # anchored on the measured median where the fit window starts
    runs = sweep.select(strategy="riemannian", optimizer="rsgd(lr=0.6)").runs
    length = max(len(run["columns"]["distance"]) for run in runs)
    padded = np.array([np.r_[run["columns"]["distance"],
                             np.full(length - len(run["columns"]["distance"]),
                                     run["columns"]["distance"][-1])] for run in runs])
    median = np.median(padded, axis=0)
    # the flat tail of stopped runs is cut before the fit: the line ends where the curve moves
    last = int(np.flatnonzero(np.diff(median) != 0)[-1]) + 1
    assert median[last] != median[last - 1] and np.all(median[last:] == median[last])
    fit = fit_rate(median[:last + 1])
    assert (k[0], k[-1]) == (fit.start, fit.stop - 1) and k[-1] <= last
    assert y[0] == median[fit.start]
    # a strategy label alone applies to every optimizer of that strategy
    assert sum(label == "predicted 0.9" for label in lines) == 1
    assert sum(line.get_label() == "predicted 0.9" for line in figure.axes[0].lines) == 3


def test_predicted_rate_of_a_gap_measure_is_squared():
    from spherenet.experiments import rate_table
    from spherenet.experiments.summary import Summary

    row = {"problem": "p", "strategy": "riemannian", "optimizer": "rsgd", "measure": "gap",
           "tol": 1e-6, "runs": 1, "reached": 1}
    for stat in ("iterations", "time", "rate", "final_gap", "final_violation"):
        row.update({f"{stat}_median": 0.64, f"{stat}_min": 0.64, f"{stat}_max": 0.64})
    summary = Summary([row])
    predicted = {"p": {("riemannian", "rsgd"): 0.8}}
    (line,) = summary.format(("rate", "predicted_rate"), predicted=predicted)[2:]
    assert [c.strip() for c in line.split("|")][-2:] == ["0.640", "0.640"]
    (line,) = rate_table(summary, predicted)[2:]
    predicted_cell, difference = [c.strip() for c in line.split("|")][-2:]
    assert predicted_cell == "0.640" and difference in ("+0.0%", "-0.0%")  # 0.8^2, not 0.8
    (line,) = summary.format(("predicted_rate",), predicted={"p": {("riemannian", "rsgd"): 1.2}})[2:]
    assert line.split("|")[-1].strip() == "unstable"


def test_fit_rate_keeps_float32_curves():
    values = (0.7 ** np.arange(40)).astype(np.float32)
    fit = fit_rate(values)
    # float32 rounding of each value: relative errors of eps32, over a window of 20 steps
    assert fit.rate == pytest.approx(0.7, rel=float(np.finfo(np.float32).eps))
    assert isinstance(fit.rate, float)


# --- the registry's starting points --------------------------------------------------------------


@pytest.mark.parametrize("name", ["rayleigh", "block_rayleigh", "karcher_mean", "spherical_kmeans",
                                  "dictionary_learning"])
def test_no_seed_starts_at_the_optimum(name):
    # The instance's data and a run's starting point are drawn from separate streams:
    # with instance 0 and seed 0 they once were the same draws, and karcher_mean and
    # dictionary_learning started their seed-0 runs at the optimum (zero iterations).
    spec, _, _, _ = resolve(name, "riemannian", "rsgd")
    problem = build_problem(spec)
    for seed in range(3):
        x0 = problem.x0(np.random.default_rng(seed))
        assert problem.distance_to_optimum(x0) > 1e-2
