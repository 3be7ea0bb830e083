"""Property test: ``minimize`` on random malformed input.

Each example is a valid call (a manifold, a dtype, a method, a strategy) with
at most one defect drawn at random: an x0 of the wrong type, dtype, shape,
with NaN/Inf or off the manifold; a product x0 with the wrong number of parts;
an unknown method, strategy or option; a cost that is not callable or that
returns a non-scalar, an array of shape (1,), NaN, a complex number or a
string; a bad maxiter, gtol, lr or rng. The outcome must be a ValueError or
TypeError whose message names what was expected and what came, raised before
any iteration (the callback never runs; the cost runs at most at x0), with x0
untouched -- or, without a defect, a result of the right structure and dtype.
"""

import copy
import math
import re

import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spherenet import Euclidean, Oblique, Product, Sphere, minimize
from spherenet.minimize import METHODS

STRATEGIES = ("riemannian", "projection", "reparam", "penalty", "none")
OPTIONS = {  # the options each method takes
    "sd": {"line_search"},
    "cg": {"beta_rule", "restart", "line_search"},
    "trust-regions": {"radius", "max_radius", "rho_prime", "theta", "kappa", "maxinner",
                      "rho_regularization"},
    "lbfgs": {"memory", "cautious_epsilon", "cautious_alpha", "line_search"},
    "bb": {"bb_rule", "step0", "step_min", "step_max", "nonmonotone_memory",
           "sufficient_decrease", "contraction", "max_trials", "nonmonotone_rule",
           "nonmonotone_eta"},
    "rsgd": {"lr", "momentum", "nesterov", "weight_decay"},
    "radam": {"lr", "betas", "eps", "amsgrad", "adaptivity"},
}


def _manifold(kind):
    return {"sphere": Sphere(4), "oblique": Oblique(3, 2),
            "product": Product([Sphere(3), Euclidean(2)])}[kind]


def _cost(kind):
    if kind == "product":
        return lambda x: -anp.sum(x[0] * anp.arange(1.0, 4.0) * x[0]) + anp.sum(x[1] ** 2)
    return lambda x: -anp.sum(anp.cos(x) * x)


def _x0(manifold, dtype, seed):
    return manifold.random_point(np.random.default_rng(seed), dtype=dtype)


def _parts(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def _same(a, b):
    """x0 untouched: same type, and every part equal (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(ai, bi) for ai, bi in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
            a, b, equal_nan=a.dtype.kind in "fc")
    return a == b


# Each defect: draw(data, case) edits the call and returns (error type(s), message regex).
def _wrong_dtype(data, case):
    x0 = _parts(case["x0"])[0]
    dtype = data.draw(st.sampled_from([np.int64, np.int32, np.float16, np.complex128]))
    bad = (x0 * 3).astype(dtype)
    case["x0"] = _replace_first(case["x0"], bad)
    return TypeError, rf"x0.*float32 or float64, got {np.dtype(dtype).name}"


def _as_list(data, case):
    if isinstance(case["manifold"], Product):
        case["x0"] = _replace_first(case["x0"], _parts(case["x0"])[0].tolist())
    else:
        case["x0"] = case["x0"].tolist()
    return TypeError, r"x0.*numpy.ndarray, got list"


def _wrong_shape(data, case):
    x0 = _parts(case["x0"])[0]
    extra = data.draw(st.integers(1, 3))
    axis = data.draw(st.integers(0, x0.ndim - 1))
    shape = list(x0.shape)
    shape[axis] += extra
    bad = np.ones(shape, dtype=x0.dtype) / math.sqrt(np.prod(shape))
    case["x0"] = _replace_first(case["x0"], bad)
    return ValueError, rf"x0.*shape {re.escape(str(x0.shape))}.*got {re.escape(str(tuple(shape)))}"


def _non_finite(data, case):
    x0 = _parts(case["x0"])[0].copy()
    value = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    x0.flat[data.draw(st.integers(0, x0.size - 1))] = value
    case["x0"] = _replace_first(case["x0"], x0)
    return ValueError, r"x0.*1 non-finite entr"


def _off_manifold(data, case):
    x0 = _parts(case["x0"])[0]
    scale = data.draw(st.sampled_from([0.0, 0.5, 0.99, 1.01, 2.0, 1e3]))
    case["x0"] = _replace_first(case["x0"], (x0 * scale).astype(x0.dtype))
    return ValueError, r"x0.*off .*norm off 1 by up to"


def _wrong_part_count(data, case):
    if not isinstance(case["manifold"], Product):
        case["manifold"] = _manifold("product")
        case["cost"] = _cost("product")
        case["x0"] = _x0(case["manifold"], case["dtype"], 0)
    parts = list(case["x0"])
    case["x0"] = tuple(parts[:1]) if data.draw(st.booleans()) else tuple(parts + parts[:1])
    return ValueError, rf"x0.*must have 2 parts, got {len(case['x0'])}"


def _unknown_method(data, case):
    name = data.draw(st.text(min_size=1, max_size=8).filter(lambda s: s not in METHODS))
    case["method"] = name
    return ValueError, r"method must be one of \[.*\] or a StepRule, got " + re.escape(repr(name))


def _unknown_strategy(data, case):
    name = data.draw(st.text(min_size=1, max_size=8).filter(lambda s: s not in STRATEGIES))
    case["strategy"] = name
    return (ValueError, TypeError), r"strategy must be one of .*got " + re.escape(repr(name))


def _unknown_option(data, case):
    name = data.draw(st.from_regex(r"[a-z_]{1,10}", fullmatch=True).filter(
        lambda s: s not in OPTIONS[case["method"]] and s not in _MINIMIZE_ARGS))
    case["options"][name] = 1.0
    return TypeError, rf"takes the options \[.*\], got unknown option\(s\) \['{name}'\]"


_MINIMIZE_ARGS = {"cost", "manifold", "x0", "method", "strategy", "grad", "hess", "maxiter",
                  "gtol", "ftol", "xtol", "maxtime", "callback", "verbose", "rng", "telemetry",
                  "ctol", "maxfev", "data", "batch_size", "epochs", "replace", "full_cost"}


def _not_callable(data, case):
    case["cost"] = data.draw(st.sampled_from([None, 3, "x**2", [1.0]]))
    return TypeError, rf"cost must be callable, got {type(case['cost']).__name__}"


def _bad_cost_value(data, case):
    kind = data.draw(st.sampled_from(["vector", "shape (1,)", "nan", "inf", "complex", "str",
                                      "None"]))
    good = case["cost"]
    if kind == "vector":
        case["cost"] = lambda x: anp.stack([good(x), 2.0 * good(x)])
        return ValueError, r"must return a scalar, got an array of shape \(2,\)"
    if kind == "shape (1,)":
        case["cost"] = lambda x: anp.reshape(good(x), (1,))
        return ValueError, r"must return a scalar, got an array of shape \(1,\)"
    if kind in ("nan", "inf"):
        case["cost"] = lambda x: good(x) * float(kind)
        return ValueError, rf"the cost is -?{kind} at the starting point"
    if kind == "complex":
        case["cost"] = lambda x: good(x) + 1j
        return ValueError, r"must return a real number \(float\), got complex"
    value = "cost" if kind == "str" else None
    case["cost"] = lambda x: value
    return ValueError, rf"must return a real number \(float\), got {type(value).__name__}"


def _bad_number(data, case):
    name = data.draw(st.sampled_from(["maxiter", "gtol", "lr"]))
    value = data.draw(st.sampled_from([-1, -1e-3, math.nan, -math.inf] + (
        [0.0] if name == "lr" else [2.5] if name == "maxiter" else [])))
    if name == "lr":
        case["method"] = data.draw(st.sampled_from(["rsgd", "radam"]))
        case["options"] = {"lr": value}
        return ValueError, r"lr must be positive, got"
    case[name] = value
    if name == "maxiter":
        return ValueError, r"maxiter must be an int >= 0, got"
    return ValueError, r"gtol must be >= 0, got"


def _bad_rng(data, case):
    case["x0"] = None if data.draw(st.booleans()) else case["x0"]
    value = data.draw(st.sampled_from([-1, -100, 1.5, "seed", True]))
    case["rng"] = value
    if isinstance(value, int) and not isinstance(value, bool):
        return ValueError, rf"rng must be None, an int >= 0 or a numpy.random.Generator, got {value}"
    return TypeError, rf"rng must be None, an int.* or a numpy.random.Generator, got {type(value).__name__}"


def _replace_first(x0, part):
    if isinstance(x0, tuple):
        return (part,) + x0[1:]
    return part


DEFECTS = {
    "x0 dtype": _wrong_dtype, "x0 list": _as_list, "x0 shape": _wrong_shape,
    "x0 non-finite": _non_finite, "x0 off the manifold": _off_manifold,
    "product x0 parts": _wrong_part_count, "method": _unknown_method,
    "strategy": _unknown_strategy, "option": _unknown_option, "cost not callable": _not_callable,
    "cost value": _bad_cost_value, "number": _bad_number, "rng": _bad_rng,
}


@st.composite
def calls(draw):
    kind = draw(st.sampled_from(["sphere", "oblique", "product"]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    manifold = _manifold(kind)
    method = draw(st.sampled_from(METHODS))
    case = dict(manifold=manifold, dtype=dtype, cost=_cost(kind), x0=_x0(manifold, dtype, 1),
                method=method, strategy=draw(st.sampled_from(STRATEGIES)), maxiter=4,
                gtol=1e-6, rng=0, options={"lr": 0.05} if method in ("rsgd", "radam") else {})
    defect = draw(st.sampled_from([None] + list(DEFECTS)))
    expected = None if defect is None else DEFECTS[defect](draw(st.data()), case)
    return defect, case, expected


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@pytest.mark.filterwarnings("ignore::RuntimeWarning:autograd")  # NaN/Inf costs, on purpose
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls())
def test_malformed_input_is_refused_before_any_iteration_and_x0_is_untouched(call):
    defect, case, expected = call
    x0_before = copy.deepcopy(case["x0"])
    evaluations, iterations = [], []
    cost = case["cost"]
    if callable(cost):
        def counted(x, cost=cost):
            evaluations.append(1)
            return cost(x)
    else:
        counted = cost
    kwargs = dict(x0=case["x0"], method=case["method"], strategy=case["strategy"],
                  maxiter=case["maxiter"], gtol=case["gtol"], rng=case["rng"],
                  callback=lambda x: iterations.append(1), **case["options"])
    if expected is None:
        result = minimize(counted, case["manifold"], **kwargs)
        assert _same(case["x0"], x0_before)
        assert result.nit <= case["maxiter"] and len(iterations) == result.nit
        for part, start in zip(_parts(result.x), _parts(x0_before)):
            assert part.shape == start.shape and part.dtype == case["dtype"]
        assert math.isfinite(result.fun)
        if case["strategy"] in ("riemannian", "projection", "reparam"):
            # These keep the constraint to rounding: within the default ctol (100 eps f32).
            assert result.violation <= 1.2e-5
        return
    error, pattern = expected
    with pytest.raises(error) as info:
        minimize(counted, case["manifold"], **kwargs)
    message = str(info.value)
    assert re.search(pattern, message), f"{defect}: {message!r} does not match {pattern!r}"
    assert not iterations, f"{defect}: the run iterated before refusing"
    assert _same(case["x0"], x0_before)
    # Only a defect of the cost's value needs the cost: one evaluation at x0, at most.
    assert len(evaluations) <= (1 if defect == "cost value" else 0), defect


def test_a_product_x0_given_as_a_list_is_taken_as_its_tuple():
    manifold = Product([Sphere(3), Euclidean(2)])
    x0 = [np.array([0.6, 0.8, 0.0]), np.array([1.0, -1.0])]
    before = copy.deepcopy(x0)
    result = minimize(_cost("product"), manifold, x0=x0, maxiter=3)
    assert isinstance(result.x, tuple) and _same(x0, before)
    reference = minimize(_cost("product"), manifold, x0=tuple(x0), maxiter=3)
    for a, b in zip(result.x, reference.x):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("value, error", [("1e-6", TypeError), (True, TypeError),
                                          (math.nan, ValueError)])
def test_tolerances_must_be_real_numbers(value, error):
    with pytest.raises(error, match="xtol must be"):
        minimize(_cost("sphere"), Sphere(4), rng=0, xtol=value)


def test_maxiter_accepts_integral_floats_and_inf():
    assert minimize(_cost("sphere"), Sphere(4), rng=0, maxiter=3.0, gtol=0).nit == 3
    assert minimize(_cost("sphere"), Sphere(4), rng=0, maxiter=math.inf).status == 0


def test_a_gradient_that_is_complex_a_list_or_text_is_refused_at_x0():
    manifold = Sphere(4)
    for grad, pattern in [(lambda x: x * 1j, "real array .*got ndarray of dtype complex128"),
                          (lambda x: list(x), r"an array shaped like the point \(4,\), got list"),
                          (lambda x: "g", "real array .*got str")]:
        with pytest.raises(ValueError, match=pattern):
            minimize(_cost("sphere"), manifold, rng=0, grad=grad)


@pytest.mark.parametrize("options", [dict(radius=-1.0), dict(max_radius=0.0),
                                     dict(radius=math.nan)])
def test_trust_region_radii_must_be_positive(options):
    with pytest.raises(ValueError, match="finite radius > 0 and max_radius > 0, got radius"):
        minimize(_cost("sphere"), Sphere(4), method="trust-regions", rng=0, **options)


@pytest.mark.parametrize("name, value, error", [
    ("grad", 3, TypeError), ("hess", "h", TypeError), ("callback", 1.0, TypeError),
    ("verbose", "loud", TypeError), ("verbose", -1, ValueError), ("telemetry", "yes", TypeError),
])
def test_other_arguments_of_the_wrong_type_are_refused(name, value, error):
    with pytest.raises(error, match=f"{name} must be"):
        minimize(_cost("sphere"), Sphere(4), rng=0, **{name: value})


@pytest.mark.filterwarnings("ignore::RuntimeWarning:autograd")
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_non_finite_cost_at_x0_is_refused_before_its_gradient_is_used(value):
    # The gradient is then NaN/Inf too; forming the Riemannian gradient from it
    # raised a floating-point RuntimeWarning (an error in this suite) instead.
    manifold = Product([Sphere(3), Euclidean(2)])
    x0 = _x0(manifold, np.float32, 1)
    with pytest.raises(ValueError, match=f"the cost is {value} at the starting point"):
        minimize(lambda x: _cost("product")(x) * value, manifold, x0=x0)


@pytest.mark.parametrize("strategy", ["penalty", "reparam"])
@pytest.mark.parametrize("value", ["cost", None, 1j, np.ones(1)])
def test_a_bad_cost_value_is_named_also_under_strategies_that_transform_the_cost(strategy, value):
    with pytest.raises(ValueError, match="the cost must return a"):
        minimize(lambda x: value, Sphere(4), strategy=strategy, rng=0)
