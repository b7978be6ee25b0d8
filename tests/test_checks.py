import math

import numpy as np
import pytest
import torch

from tutorlib import IdentityError, compare


def test_compare_passes_and_prints_both_numbers(capsys):
    assert compare("sum", 0.1 + 0.2, 0.3, rtol=1e-12, names=("float", "exact")) is None
    out = capsys.readouterr().out
    assert "✓ sum" in out and "float: " in out and "exact: " in out
    assert f"|diff| {abs(0.1 + 0.2 - 0.3):.2e}" in out


def test_compare_raises_beyond_tolerance():
    with pytest.raises(IdentityError, match="differ by"):
        compare("off", 1.0, 1.1, rtol=1e-3)
    with pytest.raises(AssertionError):  # IdentityError is an AssertionError, so pytest and nbval see it
        compare("off", torch.tensor([1.0, 2.0]), np.array([1.0, 2.5]), atol=0.1)


def test_compare_infinities():
    compare("both inf", math.inf, math.inf, rtol=1e-9)
    with pytest.raises(IdentityError):
        compare("inf vs finite", math.inf, 1e300, rtol=1e-9)
    with pytest.raises(IdentityError):
        compare("+inf vs -inf", math.inf, -math.inf, rtol=1e-9)


@pytest.mark.parametrize("kwargs, word", [
    (dict(label="", lhs=1, rhs=1, rtol=1e-9), "label"),
    (dict(label="x", lhs=1, rhs=1, rtol=-1), "rtol"),
    (dict(label="x", lhs=1, rhs=1, atol=float("nan")), "atol"),
    (dict(label="x", lhs=1, rhs=1, rtol=0, atol=0), "rtol and atol"),
    (dict(label="x", lhs=1, rhs=1), "tolerance"),
    (dict(label="x", lhs=[1, 2], rhs=[1, 2, 3], rtol=1e-9), "shape"),
    (dict(label="x", lhs=float("nan"), rhs=1, rtol=1e-9), "lhs"),
    (dict(label="x", lhs="a", rhs=1, rtol=1e-9), "lhs"),
])
def test_compare_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        compare(**kwargs)


def test_the_tolerance_given_is_the_tolerance_used(capsys):
    # atol alone means rtol = 0: a difference of 5e-7 is not within atol 1e-9
    with pytest.raises(IdentityError, match="atol 1e-09"):
        compare("x", 1.0, 1.0 + 5e-7, atol=1e-9)
    compare("x", 1.0, 1.0 + 5e-10, atol=1e-9)
    # rtol alone means atol = 0: near zero, a relative tolerance admits almost nothing
    with pytest.raises(IdentityError):
        compare("near zero", 1e-12, 0.0, rtol=0.5)
    compare("relative", 100.0, 100.0 + 9e-5, rtol=1e-6)
    with pytest.raises(IdentityError):
        compare("relative", 100.0, 100.0 + 1.1e-4, rtol=1e-6)
    # both given: the sum is the tolerance
    compare("both", 1.0, 1.0 + 1.5e-6, rtol=1e-6, atol=1e-6)
    with pytest.raises(IdentityError):
        compare("both", 1.0, 1.0 + 2.5e-6, rtol=1e-6, atol=1e-6)


def test_compare_prints_the_tolerance_it_applied(capsys):
    compare("abs", 1.0, 1.0, atol=1e-9)
    assert "tol 1.00e-09 = atol 1e-09" in capsys.readouterr().out
    compare("rel", 2.0, 2.0, rtol=1e-3, names=("a", "b"))
    assert "tol 2.00e-03 = rtol 0.001 x |b|" in capsys.readouterr().out
    compare("elementwise", [1.0, 10.0], [1.0, 10.0 + 5e-3], rtol=1e-3)
    assert "worst element 1" in capsys.readouterr().out
