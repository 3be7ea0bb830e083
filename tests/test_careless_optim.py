"""Step rules and ``minimize`` used carelessly: values that would pass for others.

A bool is not a step size (True would be lr=1), a string is not a number
("0.1" was parsed), a non-empty string is not True for a flag (nesterov="no"
meant Nesterov momentum), and a cost written for the wrong call (``cost(x)``
given data, ``cost(x, batch)`` without) is named before any iteration, with
what was expected, not as Python's error about positional arguments.
"""

import math
import re
import sys

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Sphere, minimize
from spherenet.optim import RAdam, RSGD, RSRG, RSVRG
from spherenet.optim.schedules import resolve_lr

A = np.diag([1.0, 2.0, 5.0])


def rayleigh(x):
    return -x @ A @ x


X = np.random.default_rng(0).standard_normal((30, 3)) * [2.0, 1.0, 0.5]


def pca(w, batch):
    return -0.5 * anp.mean(anp.dot(batch, w) ** 2)


RULES = [RSGD, RAdam, RSVRG, RSRG]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("lr", [True, False, np.bool_(True)])
def test_a_bool_is_not_a_step_size(rule, lr):
    with pytest.raises(TypeError, match=r"lr must be a positive number or a schedule "
                                        r"lr\(step\), got bool"):
        rule(lr=lr)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("lr", ["0.1", b"0.1", [0.1], np.array([0.1]), None, 1 + 0j])
def test_a_step_size_that_is_not_a_real_number_is_refused(rule, lr):
    with pytest.raises(TypeError, match=r"lr must be a positive number or a schedule "
                                        rf"lr\(step\), got {type(lr).__name__}"):
        rule(lr=lr)


@pytest.mark.parametrize("lr", [math.inf, np.float32(np.inf)])
def test_an_infinite_step_size_is_refused(lr):
    with pytest.raises(ValueError, match="lr must be finite, got inf"):
        RSGD(lr=lr)


@pytest.mark.parametrize("lr", [0.25, np.float32(0.25), np.float64(0.25), np.array(0.25), 1,
                                np.int64(1)])
def test_real_step_sizes_of_any_numeric_kind_are_taken_as_floats(lr):
    value = resolve_lr(lr)(7)
    assert type(value) is float and value == float(np.asarray(lr))


def test_a_minimize_run_with_lr_true_is_refused_before_any_iteration():
    with pytest.raises(TypeError, match="got bool"):
        minimize(rayleigh, Sphere(3), method="rsgd", lr=True, rng=0)


@pytest.mark.parametrize("name, rule", [("nesterov", RSGD), ("amsgrad", RAdam)])
@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
def test_flags_of_step_rules_must_be_bools(name, rule, value):
    kwargs = {name: value}
    if name == "nesterov":
        kwargs["momentum"] = 0.9
    with pytest.raises(TypeError, match=f"{name} must be True or False, got {value!r}"):
        rule(**kwargs)


@pytest.mark.parametrize("value", [np.True_, True])
def test_flags_take_numpy_bools(value):
    assert RSGD(momentum=0.5, nesterov=value).nesterov is True
    assert RAdam(amsgrad=value).amsgrad is True


@pytest.mark.parametrize("name", ["momentum", "weight_decay"])
@pytest.mark.parametrize("value", [True, "0.5", None, [0.5]])
def test_numbers_of_rsgd_must_be_real_numbers(name, value):
    with pytest.raises(TypeError, match=f"{name} must be a real number, got "
                                        f"{type(value).__name__}"):
        RSGD(**{name: value})


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_weight_decay_must_be_finite(value):
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        RSGD(weight_decay=value)


@pytest.mark.parametrize("betas", [0.9, (0.9,), (0.9, 0.99, 0.1), "ab", None, (True, 0.9),
                                   ("0.9", 0.99)])
def test_radam_betas_must_be_a_pair_of_numbers(betas):
    with pytest.raises(TypeError, match=r"betas must be a pair \(beta1, beta2\) of numbers "
                                        r"in \[0, 1\), got"):
        RAdam(betas=betas)


@pytest.mark.parametrize("eps", [True, "1e-8", None])
def test_radam_eps_must_be_a_real_number(eps):
    with pytest.raises(TypeError, match=f"eps must be a real number, got {type(eps).__name__}"):
        RAdam(eps=eps)


# --- the cost's signature ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["rsgd", "radam", "rsvrg", "rsrg"])
def test_a_cost_of_x_alone_with_data_is_named_before_any_evaluation(method):
    calls = []

    def cost(x):
        calls.append(x)
        return rayleigh(x)

    with pytest.raises(TypeError, match=r"with data=, cost is called as cost\(x, batch\) .* "
                                        r"but cost takes 1 positional argument"):
        minimize(cost, Sphere(3), method=method, data=X, epochs=1, rng=0)
    assert calls == []


def test_a_grad_of_x_alone_with_data_is_named():
    with pytest.raises(TypeError, match=r"with data=, grad is called as grad\(x, batch\)"):
        minimize(pca, Sphere(3), method="rsgd", data=X, grad=lambda x: -2 * A @ x, epochs=1,
                 rng=0)


@pytest.mark.parametrize("method", ["cg", "rsgd", "lbfgs"])
def test_a_finite_sum_cost_without_data_is_named(method):
    with pytest.raises(TypeError, match=r"cost takes 2 required positional arguments .* "
                                        r"cost\(x\); for a finite-sum cost\(x, batch\) give "
                                        r"the samples as data="):
        minimize(pca, Sphere(3), method=method, rng=0)


def test_costs_with_optional_or_variadic_arguments_are_taken():
    def with_default(w, batch=X):
        return pca(w, batch)

    res = minimize(with_default, Sphere(3), method="rsgd", lr=0.01, data=X, epochs=1, rng=0)
    assert res.nepoch == 1
    res = minimize(with_default, Sphere(3), rng=0)  # the full cost, no data
    np.testing.assert_allclose(-res.fun, np.linalg.eigvalsh(X.T @ X / 30)[-1] / 2, rtol=1e-12)
    res = minimize(lambda *args: pca(*args), Sphere(3), method="rsgd", lr=0.01, data=X,
                   epochs=1, rng=0)
    assert res.nepoch == 1



@pytest.mark.parametrize("method, option, suggestion", [
    ("rsgd", "batchsize", "batch_size"),  # a keyword of minimize itself
    ("rsvrg", "epoch", "epochs"),
    ("rsgd", "momentm", "momentum"),  # an option of the method
    ("lbfgs", "memry", "memory"),
    ("bb", "nonmonotone_rul", "nonmonotone_rule"),
])
def test_a_misspelled_keyword_is_named_with_the_likely_one(method, option, suggestion):
    data = X if method in ("rsgd", "rsvrg") else None
    cost = pca if data is not None else rayleigh
    with pytest.raises(TypeError, match=rf"unknown option\(s\) \['{option}'\] \(did you mean "
                                        rf"{suggestion}\?\)"):
        minimize(cost, Sphere(3), method=method, data=data, rng=0, **{option: 5})


def test_an_unknown_keyword_without_a_likely_one_gets_no_suggestion():
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['zzz'\]$"):
        minimize(rayleigh, Sphere(3), method="cg", zzz=1)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes need Python 3.11")
@pytest.mark.parametrize("data, shape, n", [
    (X.T, r"\(3, 30\)", 3), (X[:, 0], r"\(30,\)", 30),
    ((X.T, np.arange(3)), r"\(\(3, 30\), \(3,\)\)", 3)])
def test_data_the_cost_cannot_take_is_described_in_a_note(data, shape, n):
    # Transposed or 1-D samples fail in the user's cost; the error keeps its type and
    # message, and a note says what the cost was called with.
    def cost(w, batch):
        batch = batch[0] if isinstance(batch, tuple) else batch
        return pca(w, batch)

    with pytest.raises(ValueError) as info:
        minimize(cost, Sphere(3), method="rsgd", data=data, epochs=1, rng=0)
    assert "not aligned" in str(info.value)  # numpy's own message, unchanged
    (note,) = info.value.__notes__
    assert re.fullmatch(
        rf"raised by cost\(x0, data\): x0 of shape \(3,\), data of shape {shape} \(samples on "
        rf"the leading axis: {n} samples\); cost\(x, batch\) must take a batch of rows of data",
        note), note


@pytest.mark.parametrize("data", [[X[:, :1], X[:, 1:2]], [X[:, 0], X[:, 1]], [X, X[:, 0]]])
def test_a_list_of_arrays_is_not_taken_for_one_array_of_few_samples(data):
    # np.asarray([X, y]) with X and y of 30 rows is an array of 2 "samples": a silent
    # misreading of what a tuple (X, y) would mean.
    with pytest.raises(TypeError, match=rf"data is a list of {len(data)} arrays: give a tuple "
                                        r"\(X, y\) for several arrays of samples, or one "
                                        r"array, e.g. np.asarray\(data\)"):
        minimize(pca, Sphere(3), method="rsgd", data=data, epochs=1, rng=0)


def test_a_list_of_numbers_is_one_array():
    data = X.tolist()
    res = minimize(pca, Sphere(3), method="rsgd", lr=0.01, data=data, epochs=1, rng=0)
    ref = minimize(pca, Sphere(3), method="rsgd", lr=0.01, data=X, epochs=1, rng=0)
    np.testing.assert_array_equal(res.x, ref.x)


@pytest.mark.parametrize("method", ["sd", "cg", "lbfgs"])
@pytest.mark.parametrize("line_search", ["armijo", 3, object()])
def test_a_line_search_without_a_search_method_is_named_before_any_evaluation(method,
                                                                             line_search):
    calls = []

    def cost(x):
        calls.append(1)
        return rayleigh(x)

    with pytest.raises(TypeError, match=r"line_search must be None or an object with a method "
                                        r"search\(problem, x, d, f0, df0\) such as "
                                        r"BacktrackingLineSearch\(\), got"):
        minimize(cost, Sphere(3), method=method, line_search=line_search, rng=0)
    assert calls == []


@pytest.mark.parametrize("name", ["radius", "max_radius"])
@pytest.mark.parametrize("value", [True, "1.0"])
def test_trust_region_radii_must_be_real_numbers(name, value):
    with pytest.raises(TypeError, match=f"{name} must be a real number, got"):
        minimize(rayleigh, Sphere(3), method="trust-regions", rng=0, **{name: value})


def test_count_options_say_int_once_spaced():
    with pytest.raises(ValueError, match=r"^memory must be a finite int >= 0, got -1$"):
        minimize(rayleigh, Sphere(3), method="lbfgs", memory=-1, rng=0)


@pytest.mark.parametrize("schedule, error, match", [
    (lambda k: 0.1 - 0.04 * k, ValueError, r"returned -0.0199\d* at step 3"),  # decay past 0
    (lambda k: 0.1 if k < 2 else math.nan, ValueError, r"returned nan at step 2"),
    (lambda k: 0.1 if k < 2 else math.inf, ValueError, r"returned inf at step 2"),
    (lambda k: "0.1", TypeError, r"returned '0.1' at step 0"),
    (lambda k: None, TypeError, r"returned None at step 0"),
])
@pytest.mark.parametrize("method", ["rsgd", "radam", "rsvrg"])
def test_a_schedule_that_leaves_the_positive_numbers_is_stopped_where_it_does(schedule, error,
                                                                              match, method):
    data = X if method == "rsvrg" else None
    cost = pca if data is not None else rayleigh
    with pytest.raises(error, match=match + ": a step size must be a finite number >= 0"):
        minimize(cost, Sphere(3), method=method, lr=schedule, data=data, maxiter=10, gtol=0,
                 rng=0)


def test_a_schedule_may_reach_zero():
    from spherenet.optim.schedules import cosine_decay

    # cosine_decay(0.1, 5) is exactly 0 at step 5 (the 6th iteration): a step of length 0,
    # which the xtol test (step <= 0) then stops at.
    res = minimize(rayleigh, Sphere(3), method="rsgd", lr=cosine_decay(0.1, 5), maxiter=8,
                   gtol=0, xtol=0, rng=0)
    assert res.nit == 6 and res.history["step_size"][-1] == 0.0
    assert all(step > 0 for step in res.history["step_size"][1:-1])


def test_a_schedule_of_numpy_scalars_and_0d_arrays_is_taken():
    res = minimize(rayleigh, Sphere(3), method="rsgd", lr=lambda k: np.array(0.1), rng=0)
    ref = minimize(rayleigh, Sphere(3), method="rsgd", lr=0.1, rng=0)
    np.testing.assert_array_equal(res.x, ref.x)
    res = minimize(rayleigh, Sphere(3), method="rsgd", lr=lambda k: np.float32(0.25), rng=0)
    ref = minimize(rayleigh, Sphere(3), method="rsgd", lr=float(np.float32(0.25)), rng=0)
    np.testing.assert_array_equal(res.x, ref.x)
