"""The experiments' rate fit given several curves at once.

``fit_rate`` flattened a (runs, iterations) array into one long curve: the
second run's start after the first run's end, a rate of nothing. It is now
refused; a single curve as a column or a row is still one curve.
"""

import numpy as np
import pytest

from spherenet.experiments.rates import fit_rate


def test_several_curves_at_once_are_refused():
    curves = np.stack([3.0 * 0.8 ** np.arange(40.0), 2.0 * 0.5 ** np.arange(40.0)])
    with pytest.raises(ValueError, match=r"values must be one curve \(a value per iteration\), "
                                         r"got an array of shape \(2, 40\); fit each run "
                                         r"separately"):
        fit_rate(curves)


@pytest.mark.parametrize("shape", [(60, 1), (1, 60), (1, 60, 1)])
def test_one_curve_as_a_column_or_a_row_is_one_curve(shape):
    curve = 3.0 * 0.8 ** np.arange(60.0)
    fit = fit_rate(curve.reshape(shape))
    # Independent: the least-squares slope of log values over the second half, in closed form.
    k = np.arange(30.0, 60.0)
    logs = np.log(curve[30:])
    slope = np.sum((k - k.mean()) * (logs - logs.mean())) / np.sum((k - k.mean()) ** 2)
    assert fit.rate == pytest.approx(np.exp(slope), rel=64 * np.finfo(float).eps)
    assert (fit.start, fit.stop) == (30, 60)


# --- tolerances, seeds and step sizes of a grid --------------------------------------------


@pytest.fixture(scope="module")
def sweep():
    from spherenet.experiments import compare

    return compare(["rayleigh"], ["riemannian", "projection"], ["rsgd"], 2, budget=20,
                   executor="serial", lrs=[0.1, 1.0])


@pytest.mark.parametrize("tol, error, match", [
    ("1e-3", TypeError, "tol must be a number >= 0, got str '1e-3'"),
    (True, TypeError, "tol must be a number >= 0, got bool True"),
    (-1.0, ValueError, "tol must be a finite number >= 0, got -1.0"),
    (float("nan"), ValueError, "tol must be a finite number >= 0, got nan"),
    (float("inf"), ValueError, "tol must be a finite number >= 0, got inf"),
])
def test_a_tolerance_that_no_run_can_mean_is_refused(sweep, tol, error, match):
    from spherenet.experiments import stability

    with pytest.raises(error, match=match):
        sweep.summary(tol=tol)
    with pytest.raises(error, match=match):
        sweep.summary(tol={"rayleigh": tol})
    with pytest.raises(error, match=match):
        stability(sweep, tol=tol)


def test_tolerances_of_numpy_types_are_taken(sweep):
    from spherenet.experiments import stability

    summary = sweep.summary(tol=np.float32(1e-3))
    assert {row["tol"] for row in summary.rows} == {float(np.float32(1e-3))}
    assert stability(sweep, tol=np.int64(1))  # every run is within 1 of the optimum at once


@pytest.mark.parametrize("seeds, error, match", [
    (True, TypeError, "seeds must be a positive number of seeds or a list of seeds, got bool"),
    (2.0, TypeError, "seeds must be a positive number of seeds or a list of seeds, got float"),
    ("3", TypeError, "seeds must be a positive number of seeds or a list of seeds, got str"),
])
def test_seeds_of_the_wrong_type_are_named(seeds, error, match):
    from spherenet.experiments import build_grid

    with pytest.raises(error, match=match):
        build_grid(["rayleigh"], ["riemannian"], ["rsgd"], seeds)


def test_a_single_step_size_as_a_0d_array_is_named():
    from spherenet.experiments import build_grid

    with pytest.raises(TypeError, match=r"lrs must be a list of step sizes, got array\(0.1\)"):
        build_grid(["rayleigh"], ["riemannian"], ["rsgd"], 1, lrs=np.array(0.1))


@pytest.mark.parametrize("argument", ["tol", "measure"])
def test_a_per_problem_dict_with_a_key_that_is_no_problem_is_refused(sweep, argument):
    # {"rayleigh(n=10)": ...} for results of "rayleigh": the value was ignored and the
    # default used without a word.
    value = {"rayleigh(n=10)": 1e-3 if argument == "tol" else "gap"}
    with pytest.raises(ValueError, match=rf"{argument} has keys \['rayleigh\(n=10\)'\] that are "
                                         r"not problems of the results \['rayleigh'\]"):
        sweep.summary(**{argument: value})


def test_a_per_problem_dict_applies_to_its_problem(sweep):
    summary = sweep.summary(tol={"rayleigh": 0.5}, measure={"rayleigh": "gap"})
    assert {(row["tol"], row["measure"]) for row in summary.rows} == {(0.5, "gap")}


def test_stability_names_an_unknown_measure(sweep):
    from spherenet.experiments import stability

    with pytest.raises(ValueError, match=r"measure must be one of \['distance', 'gap', "
                                         r"'grad_norm', 'cost'\], got 'dist'"):
        stability(sweep, measure="dist")


@pytest.mark.parametrize("limits, error, match", [
    ({"Riemannian": 0.5}, ValueError, r"limits has keys \['Riemannian'\] that are not "
                                      r"strategies of the results \['riemannian', 'projection'\]"),
    ({"riemannian": "0.5"}, TypeError, r"limits\['riemannian'\] must be a real number, got str"),
    ([0.5], TypeError, r"limits must be a dict strategy label -> step size, got list"),
])
def test_plot_stability_refuses_limits_it_would_misdraw(sweep, limits, error, match):
    from matplotlib.figure import Figure

    from spherenet.experiments import plot_stability

    with pytest.raises(error, match=match):
        plot_stability(sweep, limits=limits, figure=Figure())
