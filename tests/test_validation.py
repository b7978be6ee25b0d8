"""Every public function rejects a bad argument with a ValueError that names the argument."""

import pytest
import torch

from tutorlib import integration, plotting, runtime, widgets
from tutorlib.integration import beta_problem

P = beta_problem(1)


@pytest.mark.parametrize("call, name", [
    (lambda: runtime.seed_everything(1.5), "seed"),
    (lambda: runtime.setup(mode="turbo", verbose=False), "mode"),
    (lambda: integration.beta_problem(0), "dim"),
    (lambda: integration.quadrature(P.f, P.pdf, 1, 0), "m"),
    (lambda: integration.quadrature(P.f, P.pdf, 0, 5), "dim"),
    (lambda: integration.quadrature(P.f, P.pdf, 1, 5, lo=1.0, hi=0.0), "hi"),
    (lambda: integration.quadrature("f", P.pdf, 1, 5), "f"),
    (lambda: integration.quadrature(P.f, None, 1, 5), "pdf"),
    (lambda: integration.monte_carlo(P.f, P.sample, 0), "n"),
    (lambda: integration.monte_carlo(P.f, 3, 10), "sample"),
    (lambda: integration.points_per_axis(0, 2), "budget"),
    (lambda: integration.error_curves("problem", [10]), "problem"),
    (lambda: integration.error_curves(P, []), "budgets"),
    (lambda: integration.error_curves(P, [10], reps=1), "reps"),
    (lambda: plotting.image_grid(torch.rand(4, 4), shape=(2, 2), nrow=0), "nrow"),
    (lambda: plotting.quadrature_vs_samples(P, 0), "n"),
    (lambda: widgets.small_multiples(lambda ax, v: None, "n", []), "values"),
    (lambda: widgets.small_multiples(lambda ax, v: None, "n", [1], ncols=0), "ncols"),
    (lambda: widgets.draw_dimension(None, 0), "dim"),
])
def test_bad_argument_raises_value_error_naming_it(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()
