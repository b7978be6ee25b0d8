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
    (dict(label="", lhs=1, rhs=1), "label"),
    (dict(label="x", lhs=1, rhs=1, rtol=-1), "rtol"),
    (dict(label="x", lhs=1, rhs=1, atol=float("nan")), "atol"),
    (dict(label="x", lhs=1, rhs=1, rtol=0, atol=0), "rtol and atol"),
    (dict(label="x", lhs=[1, 2], rhs=[1, 2, 3]), "shape"),
    (dict(label="x", lhs=float("nan"), rhs=1), "lhs"),
    (dict(label="x", lhs="a", rhs=1), "lhs"),
])
def test_compare_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        compare(**kwargs)
