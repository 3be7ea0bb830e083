"""The stopping tests, the argument checks and the history shared by every solver
(``spherenet.optim._loop``), one call at a time: each status at its threshold and just
past it, the order in which the tests are taken, the exact messages, and the
per-step telemetry against the sphere's closed forms written out in NumPy."""

import math

import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere, minimize
from spherenet.optim._loop import (History, Recorder, Stopper, check_maxfev, check_maxiter,
                                   check_tolerance, default_ctol, telemetry)
from spherenet.strategies import Penalty, Riemannian

EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)
X64 = np.zeros(3)


def stopper(maxiter=100, gtol=0.0, ftol=0.0, xtol=0.0, maxtime=math.inf, callback=None,
            maxfev=None):
    return Stopper(maxiter, gtol, ftol, xtol, maxtime, callback, maxfev)


# --- Stopper.check: each status -------------------------------------------------------------


def test_gradient_tolerance_is_inclusive_and_first():
    s = stopper(gtol=0.5, maxiter=0)
    assert s.check(0, 0.0, 0.5, None, 1.0, None, X64) == (0, "gradient norm 5.000e-01 <= gtol 5.0e-01")
    assert s.check(0, 0.0, 0.5000001, None, 1.0, None, X64)[0] == 1


def test_the_callback_is_asked_after_every_iteration_but_not_at_the_start():
    seen = []
    s = stopper(callback=lambda x: seen.append(x) or len(seen) == 2)
    assert s.check(0, 0.0, 1.0, None, 1.0, None, "x0") is None
    assert seen == []
    assert s.check(1, 0.0, 1.0, 2.0, 1.0, 0.1, "x1") is None
    assert s.check(2, 0.0, 1.0, 2.0, 1.0, 0.1, "x2") == (5, "stopped by the callback")
    assert seen == ["x1", "x2"]
    # only True stops: a truthy value that is not True does not
    s = stopper(callback=lambda x: 1)
    assert s.check(1, 0.0, 1.0, 2.0, 1.0, 0.1, X64) is None
    # convergence wins over the callback's request
    s = stopper(gtol=1.0, callback=lambda x: True)
    assert s.check(1, 0.0, 1.0, 2.0, 1.0, 0.1, X64)[0] == 0


def test_iteration_and_time_limits_are_inclusive():
    s = stopper(maxiter=3, maxtime=2.0)
    assert s.check(2, 1.999, 1.0, 2.0, 1.0, 0.1, X64) is None
    assert s.check(3, 0.0, 1.0, 2.0, 1.0, 0.1, X64) == (1, "maximum number of iterations (3) reached")
    assert s.check(2, 2.0, 1.0, 2.0, 1.0, 0.1, X64) == (2, "maximum time (2 s) reached")


def test_relative_cost_decrease_against_the_largest_of_both_costs_and_one():
    s = stopper(ftol=0.5)
    message = "relative cost decrease <= ftol 5.0e-01"
    assert s.check(1, 0.0, 1.0, 4.0, 2.0, 0.1, X64) == (3, message)  # 2 <= 0.5 * 4
    assert s.check(1, 0.0, 1.0, 4.0, 1.9375, 0.1, X64) is None  # 2.0625 > 2
    assert s.check(1, 0.0, 1.0, -2.0, -4.0, 0.1, X64) == (3, message)  # |f| of the new cost
    assert s.check(1, 0.0, 1.0, 0.5, 0.0, 0.1, X64) == (3, message)  # 0.5 <= 0.5 * 1
    assert s.check(1, 0.0, 1.0, None, 0.0, 0.1, X64) is None  # no previous cost
    # ftol = 0 turns the test off, even for a step that changed nothing
    assert stopper().check(1, 0.0, 1.0, 1.0, 1.0, 0.1, X64) is None


def test_step_tolerance_is_inclusive_and_turns_into_the_floor_after_an_unresolved_step():
    s = stopper(xtol=1e-9)
    assert s.check(1, 0.0, 1.0, 2.0, 1.0, 1.0000001e-9, X64) is None
    assert s.check(1, 0.0, 1.0, 2.0, 1.0, 1e-9, X64) == (4, "step size 1.000e-09 <= xtol 1.0e-09")
    assert s.check(0, 0.0, 1.0, None, 1.0, None, X64) is None  # no step yet
    assert s.check(1, 0.0, 1.0, 2.0, 1.0, 1e-10, X64, unresolved=True)[0] == 6


def test_the_precision_floor_needs_three_unresolved_steps_in_a_row():
    s = stopper()
    x32 = np.zeros(2, np.float32)
    assert s.check(1, 0.0, 0.5, 1.0, 1.0, 0.1, x32, unresolved=True) is None
    assert s.check(2, 0.0, 0.25, 1.0, 1.0, 0.1, x32, unresolved=True) is None
    assert s.check(3, 0.0, 0.75, 1.0, 1.0, 0.1, x32, unresolved=False) is None  # resets
    assert s.unresolved_steps == 0
    for it in (4, 5):
        assert s.check(it, 0.0, 0.75, 1.0, 1.0, 0.1, x32, unresolved=True) is None
    assert s.check(6, 0.0, 0.75, 1.0, 1.0, 0.1, x32, unresolved=None) is None  # not counted
    status, message = s.check(7, 0.0, 0.75, 1.0, 1.0, 0.1, x32, unresolved=True)
    assert status == 6 and s.best_grad_norm == 0.25
    assert message == ("stopped at the float32 precision floor: the cost no longer resolves the "
                       "decrease of a step (<= 4 eps |f|); gradient norm 7.500e-01 cannot go "
                       "below ~2.5e-01 in float32 (gtol 0.0e+00: use float64, or a gtol above "
                       "the floor)")
    assert s.floor_message(X64, 0.5).endswith("(gtol 0.0e+00: use a gtol above the floor)")


def test_unresolved_compares_both_changes_with_four_eps_of_the_larger_cost():
    s = stopper()
    f = 2.0
    noise = 4 * EPS64 * 2.0  # both costs are 2 or just below: max |f| = 2
    assert s.unresolved(X64, f, f - noise)
    assert not s.unresolved(X64, f, f - 2 * noise)
    assert s.unresolved(X64, -f, -f + noise)  # the magnitude of negative costs
    assert s.unresolved(X64, f, f, predicted=-noise)
    assert not s.unresolved(X64, f, f, predicted=2 * noise)
    assert not s.unresolved(X64, f, f, improved=True)
    assert s.unresolved(np.zeros(2, np.float32), 1.0, 1.0 - 4 * EPS32)
    assert not s.unresolved(np.zeros(2, np.float32), 1.0, 1.0 - 8 * EPS32)


def test_maxfev_message():
    assert stopper(maxfev=7).maxfev_message() == ("maximum number of cost evaluations "
                                                  "(maxfev=7) reached")


# --- argument checks ------------------------------------------------------------------------


def test_check_maxfev():
    assert check_maxfev(None) is None and check_maxfev(math.inf) is None
    assert check_maxfev(1) == 1 and type(check_maxfev(3.0)) is int
    for bad in (0, -2, 2.5, math.nan):
        with pytest.raises(ValueError, match=f"^maxfev must be an int >= 1 or None, got {bad!r}$"):
            check_maxfev(bad)
    for bad, name in ((True, "bool"), ("3", "str")):
        with pytest.raises(TypeError, match=f"^maxfev must be an int >= 1 or None, got {name}$"):
            check_maxfev(bad)


def test_check_maxiter():
    assert check_maxiter(0) == 0 and check_maxiter(math.inf) == math.inf
    assert check_maxiter(1e3) == 1000 and type(check_maxiter(1e3)) is int
    for bad in (-1, 0.5, math.nan):
        with pytest.raises(ValueError, match=f"^maxiter must be an int >= 0, got {bad!r}$"):
            check_maxiter(bad)
    with pytest.raises(TypeError, match="^maxiter must be an int >= 0, got bool$"):
        check_maxiter(False)


def test_check_tolerance():
    assert check_tolerance("gtol", 0) == 0.0 and type(check_tolerance("gtol", 0)) is float
    assert check_tolerance("xtol", math.inf) == math.inf
    for bad in (-1e-300, math.nan):
        with pytest.raises(ValueError, match=f"^ftol must be >= 0, got {bad!r}$"):
            check_tolerance("ftol", bad)
    with pytest.raises(TypeError, match="^gtol must be a real number >= 0, got bool$"):
        check_tolerance("gtol", True)
    with pytest.raises(TypeError, match="^callback must be callable or None, got int$"):
        Stopper(10, 0.0, 0.0, 0.0, 1.0, 3)


def test_default_ctol_is_100_eps_of_the_coarsest_dtype_but_at_least_1e_6():
    assert default_ctol(np.zeros(2)) == 1e-6
    assert default_ctol(np.zeros(2, np.float32)) == 100.0 * EPS32
    assert default_ctol((np.zeros(2), np.zeros(2, np.float32))) == 100.0 * EPS32


# --- telemetry ------------------------------------------------------------------------------


def test_telemetry_of_a_step_on_the_sphere_against_closed_forms():
    # Sphere(3) with the projection retraction and transport: x = e1, step u = t e2 + c e1
    # (c: a normal part); x+ = (x + P u) / ||x + P u|| = (e1 + t e2) / sqrt(1 + t^2).
    t, c = 0.75, 0.01
    sphere = Sphere(3, retraction="projection", transport="projection")
    x = np.array([1.0, 0.0, 0.0])
    u = np.array([c, t, 0.0])
    y = np.array([1.0, t, 0.0]) / np.sqrt(1.0 + t * t)
    got = telemetry(sphere, x, y, u)
    size = np.hypot(t, c)
    assert got["tangency"] == pytest.approx(c / size, rel=4 * EPS64)
    assert got["norm_drift"] == pytest.approx(0.0, abs=4 * EPS64)
    assert got["chord"] == pytest.approx(np.linalg.norm(y - x), rel=4 * EPS64)
    # R_x(u) and Exp_x(u) lie on the great circle of e1, e2, at angles atan(t) and ||u||
    # (the exponential of the step as given, whose normal part it does not remove)
    moved = u - (y @ u) * y
    assert got["transport_defect"] == pytest.approx(abs(np.linalg.norm(moved) - size) / size,
                                                    rel=16 * EPS64)
    assert set(got) == {"tangency", "norm_drift", "chord", "retr_exp_gap", "transport_defect"}


def test_telemetry_of_a_tangent_step_with_the_exponential_map():
    t = 0.5
    sphere = Sphere(3, retraction="exp", transport="parallel")
    x = np.array([0.0, 0.0, 1.0])
    u = np.array([t, 0.0, 0.0])
    y = np.array([np.sin(t), 0.0, np.cos(t)])
    got = telemetry(sphere, x, y, u)
    assert got["tangency"] == 0.0 and got["retr_exp_gap"] == 0.0
    assert got["chord"] == pytest.approx(2.0 * np.sin(t / 2.0), rel=4 * EPS64)
    assert got["transport_defect"] == pytest.approx(0.0, abs=4 * EPS64)  # isometry


def test_telemetry_of_a_null_step_is_all_zero_and_of_a_retraction_gap_positive():
    sphere = Sphere(3, retraction="projection")
    x = np.array([0.0, 1.0, 0.0])
    assert telemetry(sphere, x, x, np.zeros(3)) == dict.fromkeys(
        ("tangency", "norm_drift", "chord", "retr_exp_gap", "transport_defect"), 0.0)
    t = 1.0
    u = np.array([t, 0.0, 0.0])
    y = (x + u) / np.linalg.norm(x + u)
    assert telemetry(sphere, x, y, u)["retr_exp_gap"] == pytest.approx(t - np.arctan(t),
                                                                       rel=8 * EPS64)


def test_telemetry_norm_drift_is_the_change_of_the_violation():
    flat = Euclidean(3)
    x = np.array([1.0, 0.0, 0.0])
    y = np.array([1.0, 2.0, 0.0])
    got = telemetry(Sphere(3).unchecked, x, y, y - x)  # y is 1.236 off the sphere, x on it
    assert got["norm_drift"] == pytest.approx(np.sqrt(5.0) - 1.0, rel=4 * EPS64)
    assert telemetry(flat, x, y, y - x)["norm_drift"] == 0.0
    product = Product([Sphere(2), Euclidean(1)]).unchecked
    step = (np.array([0.0, 0.5]), np.array([2.0]))
    got = telemetry(product, (np.array([1.0, 0.0]), np.zeros(1)),
                    (np.array([1.0, 0.5]), np.array([2.0])), step)
    # ||chord||^2 over both factors: 0.5^2 + 2^2
    assert got["chord"] == pytest.approx(np.sqrt(4.25), rel=4 * EPS64)


# --- Recorder -------------------------------------------------------------------------------


class _Problem:
    def __init__(self, geometry, nonfinite=0):
        self.geometry = geometry
        self.nfev, self.ngev, self.nhev, self.nonfinite = 3, 2, 1, nonfinite


def test_recorder_refuses_bad_options():
    strategy = Riemannian(Sphere(3))
    with pytest.raises(TypeError, match=r"^verbose must be an int \(0, 1 or 2\), got str$"):
        Recorder(_Problem(Sphere(3)), strategy, verbose="2")
    with pytest.raises(ValueError, match=r"^verbose must be an int \(0, 1 or 2\), got -1$"):
        Recorder(_Problem(Sphere(3)), strategy, verbose=-1)
    with pytest.raises(TypeError, match="^telemetry must be True or False, got int$"):
        Recorder(_Problem(Sphere(3)), strategy, telemetry=1)
    with pytest.raises(ValueError, match="^ctol must be >= 0"):
        Recorder(_Problem(Sphere(3)), strategy, ctol=-1.0)
    assert Recorder(_Problem(Sphere(3)), strategy, telemetry=np.bool_(True)).telemetry is True


def test_result_counts_and_messages():
    x = np.array([0.0, 0.6, 0.8])
    rec = Recorder(_Problem(Sphere(3), nonfinite=2), Riemannian(Sphere(3)))
    rec.record(0, x, -1.0, 0.5)
    res = rec.result(x, -1.0, 0.5, 0, 4, "the line search found no decrease")
    assert (res.nfev, res.ngev, res.nhev, res.nit, res.fun, res.grad_norm) == (3, 2, 1, 0, -1.0, 0.5)
    assert res.message == ("the line search found no decrease; the cost was NaN or Inf at 2 "
                           "trial point(s), which were rejected")
    assert not res.success and res.status == 4
    for status in (0, 3, -1):  # converged, or failed on a NaN itself: no note
        rec = Recorder(_Problem(Sphere(3), nonfinite=2), Riemannian(Sphere(3)))
        assert rec.result(x, -1.0, 0.5, 0, status, "m").message == "m"
    rec = Recorder(_Problem(Sphere(3)), Riemannian(Sphere(3)))
    assert rec.result(x, -1.0, 0.5, 0, 3, "m").success


def test_result_of_an_infeasible_point_says_by_how_much_and_is_no_success():
    manifold = Sphere(2)
    strategy = Penalty(manifold, mu=1.0)
    x = np.array([1.25, 0.0])
    rec = Recorder(_Problem(strategy.geometry), strategy, ctol=0.2)
    res = rec.result(x, 0.0, 0.0, 0, 0, "converged")
    assert not res.success and res.violation == pytest.approx(0.25, rel=4 * EPS64)
    assert res.message.startswith("converged; but the weights are off the sphere by up to "
                                  "0.25 (> ctol 2.0e-01): ")
    assert res.message.endswith(strategy.infeasible_advice())
    rec = Recorder(_Problem(strategy.geometry), strategy, ctol=0.25)  # at ctol: feasible
    assert rec.result(x, 0.0, 0.0, 0, 0, "converged").success


def test_verbose_prints_the_summary_and_the_iterations(capsys):
    x = np.array([0.0, 0.6, 0.8])
    rec = Recorder(_Problem(Sphere(3)), Riemannian(Sphere(3)), verbose=1)
    rec.record(0, x, -1.0, 0.5)
    rec.result(x, -1.0, 0.5, 0, 0, "done")
    assert capsys.readouterr().out == ("done after 0 iterations: cost -1.0000000000e+00, "
                                       "gradient norm 5.000e-01\n")
    rec = Recorder(_Problem(Sphere(3)), Riemannian(Sphere(3)), verbose=2)
    rec.record(0, x, -1.0, 0.5)
    rec.record(1, x, -1.5, 0.25, 0.125)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["iter", "cost", "grad", "norm", "violation", "step"]
    assert out[2].split() == ["1", "-1.500000000000000e+00", "2.50000e-01",
                              f"{abs(np.linalg.norm(x) - 1.0):.2e}", "1.250e-01"]


def test_history_has_one_row_per_iterate_and_goes_to_pandas():
    pd = pytest.importorskip("pandas")
    res = minimize(lambda x: -x[0, 0], Oblique(2, 3), rng=0, method="sd", maxiter=3, gtol=0.0)
    h = res.history
    assert isinstance(h, History) and all(len(v) == res.nit + 1 for v in h.values())
    frame = h.to_pandas()
    assert isinstance(frame, pd.DataFrame) and frame.index.name == "iteration"
    assert list(frame.columns) == list(h) and np.array_equal(frame["cost"], h["cost"])


# --- more edges --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gtol", "ftol", "xtol", "maxtime"])
def test_stopper_names_the_bad_tolerance(name):
    options = dict(maxiter=10, gtol=0.0, ftol=0.0, xtol=0.0, maxtime=1.0, callback=None)
    options[name] = -1.0
    with pytest.raises(ValueError, match=f"^{name} must be >= 0, got -1.0$"):
        Stopper(**options)


def test_relative_cost_decrease_of_costs_below_one_is_measured_against_one():
    s = stopper(ftol=0.5)
    assert s.check(1, 0.0, 1.0, 0.75, 0.0, 0.1, X64) is None  # 0.75 > 0.5 * max(0.75, 0, 1)


def test_telemetry_norm_drift_from_a_point_off_the_sphere():
    x, y = np.array([1.5, 0.0]), np.array([2.0, 0.0])
    got = telemetry(Sphere(2).unchecked, x, y, y - x)
    assert got["norm_drift"] == 0.5  # violation 1 after, 0.5 before


def test_to_pandas_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    with pytest.raises(ImportError, match="^History.to_pandas needs pandas: pip install pandas$"):
        History({"cost": np.zeros(1)}).to_pandas()


def test_which_runs_batch_their_history():
    from spherenet.optim._loop import _batchable
    from spherenet.strategies import NoConstraint, Projection, Reparam

    assert _batchable(Riemannian(Oblique(2, 3))) and _batchable(Projection(Sphere(3)))
    assert not _batchable(Riemannian(Euclidean(3)))
    assert not _batchable(Riemannian(Product([Sphere(2), Euclidean(1)])))
    assert not _batchable(Reparam(Sphere(3)))  # weights != variable, and an extra field
    assert not _batchable(Penalty(Sphere(3))) and not _batchable(NoConstraint(Sphere(3)))


def test_recorder_defaults_are_quiet_without_telemetry_and_ctol_1e_6(capsys):
    x = np.array([0.0, 0.6, 0.8])
    rec = Recorder(_Problem(Sphere(3)), Riemannian(Sphere(3)))
    rec.record(0, x, -1.0, 0.5)
    res = rec.result(x * (1.0 + 5e-7), -1.0, 0.5, 0, 0, "done")
    assert res.success and capsys.readouterr().out == ""
    assert not any(name in res.history for name in ("tangency", "chord"))
    assert not rec.result(x * (1.0 + 2e-6), -1.0, 0.5, 0, 0, "done").success


def test_the_per_iterate_violation_and_angle():
    rec = Recorder(_Problem(Sphere(2)), Riemannian(Sphere(2)))
    t = 0.4
    x, y = np.array([1.0, 0.0]), np.array([np.cos(t), np.sin(t)])
    violation, angle = rec._violation_and_angle(x, y)
    assert violation == pytest.approx(0.0, abs=2 * EPS64)
    assert angle == pytest.approx(t, rel=4 * EPS64)
    violation, angle = rec._violation_and_angle(None, 1.25 * y)
    assert violation == pytest.approx(0.25, rel=4 * EPS64) and np.isnan(angle)


def test_projection_history_angles_are_those_of_the_normalized_iterates():
    # With epsilon > 0 the projection iterates have norm 1/(1 + epsilon): the batched
    # history normalizes them before measuring the angle.
    from spherenet.strategies import Projection

    a = np.diag(np.linspace(1.0, 3.0, 6))
    seen = []
    res = minimize(lambda x: -x @ a @ x, Sphere(6), x0=np.ones(6) / np.sqrt(6.0), method="sd",
                   strategy=Projection(Sphere(6), epsilon=0.1), maxiter=5, gtol=0.0,
                   callback=lambda x: seen.append(np.array(x)))
    points = [np.ones(6) / np.sqrt(6.0)] + seen
    ref = []
    for p, q in zip(points[:-1], points[1:]):
        p, q = p / np.linalg.norm(p), q / np.linalg.norm(q)
        c = p @ q
        ref.append(np.arctan2(np.linalg.norm(q - c * p), c))
    np.testing.assert_allclose(res.history["angle"][1:], ref, rtol=1e-12)


def test_history_times_are_seconds_since_the_start():
    res = minimize(lambda x: -x[0], Sphere(3), x0=np.array([0.0, 0.6, 0.8]), method="sd",
                   maxiter=5, gtol=0.0, maxtime=3600.0)
    t = res.history["time"]
    assert res.status == 1 and 0.0 <= t[0] and np.all(np.diff(t) >= 0.0) and t[-1] < 3600.0


def test_telemetry_after_a_rejected_trust_region_step_is_nan():
    a = np.diag(np.linspace(1.0, 10.0, 10))
    res = minimize(lambda x: -(x @ (a @ x)), Sphere(10), x0=np.ones(10) / np.sqrt(10.0),
                   method="trust-regions", radius=3.0, max_radius=3.0, maxiter=3,
                   telemetry=True)
    h = res.history
    assert np.isnan(h["step_size"][1]) and np.isnan(h["chord"][1])  # rejected
    assert h["chord"][2] > 0.0
