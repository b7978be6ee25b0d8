"""The VAE of chapters 2-4, in Su's notation: encoder p(z|x), prior q(z) = N(0, I), decoder q(x|z).

:class:`VAE` holds a Gaussian encoder and a Bernoulli or Gaussian decoder, and computes

- the loss of chapter 2 (Su's article 1, section 3): ``E_{z~p(z|x)}[-ln q(x|z)] + KL(p(z|x) || q(z))``
  with the analytic KL and one reparameterised sample (``kl="analytic"``), or with the KL term
  sampled at the same point too (``kl="sampled"``, article 2, section 2);
- the prior-sampling objective ``-ln (1/k) sum_j q(x|z_j)``, ``z_j ~ q(z)`` shared by the batch
  (the "fight over z" of article 2, section 3);
- the IWAE bound ``L_k = E[ln (1/k) sum_i q(x|z_i) q(z_i) / p(z_i|x)]``, ``z_i ~ p(z|x)`` (Burda et al.).

:func:`pathwise_gradients` and :func:`score_function_gradients` are the two estimators of the gradient
of ``E_{z~N(mu, e^logvar)}[f(z)]`` that chapter 4 compares, and :func:`check_gradients` the check it
compares them with (per component, in standard errors from the samples, refusing a check too weak to
fail). :func:`multi_sample_loss` (``fit(..., samples=S)``), :func:`loss_per_image` and
:func:`gradient_noise` test Su's remark that more than one draw of z per image changes little, with
:func:`check_gradient_noise` for the 1/S law of the noise from z; :func:`rescale_codes` and
:func:`check_code_rescaling` show that the loss prefers codes with ``E[mu_i^2 + sigma_i^2] = 1``.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from tutorlib._validate import one_of, positive_float, positive_int

LIKELIHOODS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2 * math.pi)


def _mlp(sizes: Sequence[int], activation: str) -> torch.nn.Sequential:
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[activation]
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return torch.nn.Sequential(*layers)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``ln N(x; mean, e^logvar)`` summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 / logvar.exp()).sum(-1)


def pairwise_log_likelihood(model: "VAE", x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``ln q(x_i | z_j)`` for every pair of an image ``x_i`` (batch, x_dim) and a code ``z_j`` (k, z_dim):
    shape (k, batch). For a Bernoulli decoder this is one matrix product,
    ``x @ logits.T - sum softplus(logits)``, so ``k`` codes cost ``k`` decoder passes, not ``k * batch``
    (the prior-sampling objective shares its codes across the batch)."""
    x = model._check_x(x)
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != model.z_dim:
        raise ValueError(f"z must have shape (k, {model.z_dim}), got {tuple(getattr(z, 'shape', ()))}")
    if model.likelihood == "bernoulli":
        logits = model.decode(z)  # (k, x_dim)
        return logits @ x.T - F.softplus(logits).sum(-1, keepdim=True)
    return -model.nll(x, z[:, None, :])


class VAE(torch.nn.Module):
    """A VAE with a Gaussian encoder and a Bernoulli or Gaussian decoder.

    ``hidden``: the width of each hidden layer (an int, or a sequence of widths), used by both
    networks; ``likelihood``: ``"bernoulli"`` (binary data: sigmoid + cross-entropy) or
    ``"gaussian"``; ``sigma`` (Gaussian only): a fixed decoder standard deviation,
    ``"learned"`` for a per-pixel ``sigma(z)`` output by the decoder, or ``"learned-scalar"`` for
    one trainable ``sigma`` shared by every pixel (as the f-VAE's ``sigma2``, chapter 6), starting
    at ``sigma_init``.
    """

    def __init__(self, x_dim: int, z_dim: int, hidden: int | Sequence[int] = 400, likelihood: str = "bernoulli",
                 sigma: float | str = 1.0, activation: str = "relu", sigma_init: float = 1.0) -> None:
        super().__init__()
        self.x_dim, self.z_dim = positive_int("x_dim", x_dim), positive_int("z_dim", z_dim)
        self.likelihood = one_of("likelihood", likelihood, LIKELIHOODS)
        one_of("activation", activation, ("relu", "tanh"))
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        widths = [positive_int("hidden", h) for h in widths]
        if likelihood == "gaussian":
            if sigma == "learned":
                self.log_sigma = None
            elif sigma == "learned-scalar":
                self.log_sigma = torch.nn.Parameter(torch.tensor(math.log(positive_float("sigma_init", sigma_init))))
            else:
                self.register_buffer("log_sigma", torch.tensor(math.log(positive_float("sigma", sigma))))
        elif sigma not in (1.0, "learned", "learned-scalar") and sigma is not None:
            raise ValueError(f"sigma only applies to likelihood='gaussian', got sigma={sigma!r}")
        self.learned_sigma = likelihood == "gaussian" and sigma == "learned"
        out = 2 * self.x_dim if self.learned_sigma else self.x_dim
        self.encoder = _mlp([self.x_dim, *widths, 2 * self.z_dim], activation)
        self.decoder = _mlp([self.z_dim, *widths[::-1], out], activation)

    # --- the two networks ---------------------------------------------------------------
    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.x_dim:
            raise ValueError(f"x must have shape (batch, {self.x_dim}), got {tuple(getattr(x, 'shape', ()))}")
        return x

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder p(z|x) = N(mu, e^logvar): returns ``(mu, logvar)``, each (batch, z_dim)."""
        mu, logvar = self.encoder(self._check_x(x)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor):
        """The decoder's parameters: Bernoulli logits, or the Gaussian ``(mean, logvar)``."""
        if z.shape[-1] != self.z_dim:
            raise ValueError(f"z must have last dimension {self.z_dim}, got {tuple(z.shape)}")
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return out
        if self.learned_sigma:
            mean, logvar = out.chunk(2, dim=-1)
            return mean, logvar
        return out, (2 * self.log_sigma).expand_as(out)

    def nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``-ln q(x|z)`` summed over pixels; ``z`` may carry leading sample dimensions."""
        params = self.decode(z)
        if self.likelihood == "bernoulli":
            logits, target = torch.broadcast_tensors(params, x)
            return F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
        mean, logvar = params
        return -gaussian_log_prob(x, mean, logvar)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, k: int | None = None,
                       u: torch.Tensor | None = None) -> torch.Tensor:
        """``z = mu + e^{logvar/2} * u`` with ``u ~ N(0, I)``: a sample that gradients flow through.

        ``u``: the standard-normal draw to use (shape ``mu.shape``, or ``(k, *mu.shape)``), e.g. to
        compare two losses at the same noise; drawn fresh if ``None``."""
        shape = mu.shape if k is None else (k, *mu.shape)
        if u is None:
            u = torch.randn(shape, device=mu.device, dtype=mu.dtype)
        elif not isinstance(u, torch.Tensor) or tuple(u.shape) != tuple(shape):
            raise ValueError(f"u must be a tensor of shape {tuple(shape)}, got {tuple(getattr(u, 'shape', ()))}")
        return mu + (0.5 * logvar).exp() * u

    # --- objectives ---------------------------------------------------------------------
    def loss_terms(self, x: torch.Tensor, kl: str = "analytic", u: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-example terms of Su's loss with one reparameterised sample z ~ p(z|x):
        ``rec = -ln q(x|z)`` and ``kl`` (analytic, or sampled as ``ln p(z|x) - ln q(z)``).
        ``u`` (batch, z_dim): the noise of the sample ``z = mu + sigma * u``, drawn if ``None``."""
        from tutorlib.divergences import kl_normal_std

        one_of("kl", kl, ("analytic", "sampled"))
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, u=u)
        rec = self.nll(x, z)
        if kl == "analytic":
            kl_term = kl_normal_std(mu, logvar)
        else:
            kl_term = gaussian_log_prob(z, mu, logvar) - gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
        return {"rec": rec, "kl": kl_term}

    def loss(self, x: torch.Tensor, kl: str = "analytic", beta: float = 1.0) -> dict[str, torch.Tensor]:
        """The batch-mean loss ``rec + beta * kl`` and its two terms (for :func:`tutorlib.train.train`)."""
        beta = positive_float("beta", beta, allow_zero=True)
        t = self.loss_terms(x, kl=kl)
        rec, kl_term = t["rec"].mean(), t["kl"].mean()
        return {"loss": rec + beta * kl_term, "rec": rec, "kl": kl_term}

    def elbo(self, x: torch.Tensor, kl: str = "analytic") -> torch.Tensor:
        """One-sample estimate of the evidence lower bound per example (minus the loss)."""
        t = self.loss_terms(x, kl=kl)
        return -(t["rec"] + t["kl"])

    def log_weights(self, x: torch.Tensor, k: int, u: torch.Tensor | None = None) -> torch.Tensor:
        """``ln q(x|z_i) + ln q(z_i) - ln p(z_i|x)`` for ``k`` draws ``z_i ~ p(z|x)``: shape (k, batch).
        ``u`` (k, batch, z_dim): the standard-normal draws of ``z_i = mu + sigma * u_i`` (drawn if ``None``),
        e.g. to evaluate two formulas at the same noise."""
        k = positive_int("k", k)
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, k, u=u)
        zero = torch.zeros_like(z)
        return -self.nll(x, z) + gaussian_log_prob(z, zero, zero) - gaussian_log_prob(z, mu, logvar)

    def iwae_bound(self, x: torch.Tensor, k: int, u: torch.Tensor | None = None) -> torch.Tensor:
        """The IWAE bound ``L_k`` per example: ``ln (1/k) sum_i w_i`` with ``w_i = q(x, z_i) / p(z_i|x)``
        (log-sum-exp, numerically stable). ``k = 1`` is the all-sampled ELBO of article 2, section 2.
        ``u``: the noise of the ``k`` draws, as in :meth:`log_weights`."""
        lw = self.log_weights(x, k, u=u)
        return torch.logsumexp(lw, dim=0) - math.log(lw.shape[0])

    def prior_sampling_loss(self, x: torch.Tensor, k: int, return_assignment: bool = False,
                            generator: torch.Generator | None = None):
        """``-mean_x ln (1/k) sum_j q(x|z_j)`` with ``k`` prior samples ``z_j ~ N(0, I)`` shared by the
        whole batch: the x's compete for the few z's. With ``return_assignment`` also returns, for
        each x, the index of the z_j that explains it best, and the z's (k, z_dim). ``generator``:
        for the draws of the z's (default: the global random state)."""
        k = positive_int("k", k)
        self._check_x(x)
        z = torch.randn(k, self.z_dim, device=x.device, dtype=x.dtype, generator=generator)
        log_lik = pairwise_log_likelihood(self, x, z)  # (k, batch)
        loss = -(torch.logsumexp(log_lik, dim=0) - math.log(k)).mean()
        if return_assignment:
            return loss, log_lik.argmax(dim=0), z
        return loss

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """``n`` decoder means (Bernoulli probabilities or Gaussian means) at ``z ~ N(0, T^2 I)``
        (no gradient: samples are for looking at)."""
        n, temperature = positive_int("n", n), positive_float("temperature", temperature)
        ref = next(self.parameters())
        z = temperature * torch.randn(n, self.z_dim, device=ref.device, dtype=ref.dtype)
        return self.mean(z)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean at ``z``: sigmoid of the logits, or the Gaussian mean."""
        params = self.decode(z)
        return torch.sigmoid(params) if self.likelihood == "bernoulli" else params[0]


# --- chapter 4: two estimators of d/d(mu, logvar) E_{z ~ N(mu, e^logvar)}[f(z)] -------------------

CHUNK = 4096  # rows of z per evaluation of f: small enough to stay in the cache


def _check_gaussian(mu, logvar, n):
    for name, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() != 1:
            raise ValueError(f"mu and logvar must be 1-D floating-point tensors of the same shape; "
                             f"{name} is {type(t).__name__}{tuple(t.shape) if isinstance(t, torch.Tensor) else ''}")
    if mu.shape != logvar.shape or mu.dtype != logvar.dtype:
        raise ValueError(f"mu and logvar must be 1-D tensors of the same shape and dtype, got "
                         f"{tuple(mu.shape)} {mu.dtype} and {tuple(logvar.shape)} {logvar.dtype}")
    return positive_int("n", n)


def _values(f, z: torch.Tensor) -> torch.Tensor:
    out = f(z)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (z.shape[0],):
        raise ValueError(f"f must map an (n, dim) tensor to n values (one per row), got "
                         f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return out


def pathwise_gradients(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, logvar: torch.Tensor, n: int,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` single-sample pathwise (reparameterisation) estimates of the gradient of
    ``E_{z~N(mu, e^logvar)}[f(z)]`` w.r.t. ``(mu, logvar)``: ``z = mu + sigma u`` and
    ``d f(z) / d(mu, logvar) = (f'(z), f'(z) * sigma * u / 2)``. Returns shape (n, 2 * dim).
    ``f`` maps (n, dim) to (n,) row by row."""
    n = _check_gaussian(mu, logvar, n)
    u = torch.randn(n, mu.shape[0], generator=generator, dtype=mu.dtype)
    sigma = (0.5 * logvar.detach()).exp()
    df_dz = []
    for uc in u.split(CHUNK):  # f is row by row, so chunks change nothing but the memory traffic
        z = (mu.detach() + sigma * uc).requires_grad_(True)
        df_dz.append(torch.autograd.grad(_values(f, z).sum(), z)[0])  # row i depends only on z_i: per-sample
    df_dz = torch.cat(df_dz)
    return torch.cat([df_dz, df_dz * sigma * u / 2], dim=1)  # dz/dlogvar = sigma u / 2


def score_function_gradients(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, logvar: torch.Tensor,
                             n: int, generator: torch.Generator | None = None,
                             baseline: float | Sequence[float] = 0.0) -> torch.Tensor:
    """``n`` single-sample score-function (REINFORCE) estimates of the same gradient:
    ``(f(z) - b) * d ln N(z; mu, e^logvar) / d(mu, logvar)`` with ``z ~ N(mu, e^logvar)`` (no
    gradient through z) and a constant baseline ``b``. Returns shape (n, 2 * dim).

    ``baseline`` may also be a sequence of constants: then the result has shape
    (len(baseline), n, 2 * dim), one set of estimates per baseline, all from the same ``n`` draws
    (``f`` is evaluated once)."""
    n = _check_gaussian(mu, logvar, n)
    many = not isinstance(baseline, Real)
    bs = [float(b) for b in baseline] if many else [float(baseline)]
    if not bs or not all(math.isfinite(b) for b in bs):
        raise ValueError(f"baseline must be a finite number or a non-empty sequence of them, got {baseline!r}")
    u = torch.randn(n, mu.shape[0], generator=generator, dtype=mu.dtype)
    sigma = (0.5 * logvar.detach()).exp()
    with torch.no_grad():
        fz = torch.cat([_values(f, mu.detach() + sigma * uc).detach() for uc in u.split(CHUNK)])
    score = torch.cat([u / sigma, 0.5 * (u**2 - 1)], dim=1)  # (z - mu) / sigma^2, (z - mu)^2 / (2 sigma^2) - 1/2
    out = torch.stack([(fz - b)[:, None] * score for b in bs])
    return out if many else out[0]


def gradient_names(dim: int) -> list[str]:
    """The names of the ``2 * dim`` components the estimators return: ``d/dmu_1 .. d/dlogvar_dim``."""
    dim = positive_int("dim", dim)
    return [f"d/dmu_{i + 1}" for i in range(dim)] + [f"d/dlogvar_{i + 1}" for i in range(dim)]


def _per_sample(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must be an (n, m) tensor of per-sample estimates with n >= 2, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    x = x.detach().double()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains non-finite values")
    return x


def check_gradients(label: str, estimates: torch.Tensor, reference, n_se: float = 4.0,
                    names: tuple[str, str] = ("estimator", "reference"), components: Sequence[str] | None = None) -> None:
    """Check that per-sample gradient ``estimates`` (n, m) have the mean ``reference``, component
    by component, within ``n_se`` standard errors of the difference.

    ``reference`` is either the exact gradient (a vector of m numbers) or the (n', m) per-sample
    estimates of another estimator from independent draws (then its standard error counts too).
    Standard errors are computed from the samples. ``components`` names the m components (default:
    :func:`gradient_names`, ``d/dmu_i`` then ``d/dlogvar_i``). Prints both means and the standard errors,
    then compares the largest standardised difference ``max_i |mean_i - ref_i| / se_i`` with
    ``n_se`` (:func:`tutorlib.compare`), and raises :class:`tutorlib.IdentityError` if it is larger.

    A check too weak to fail is refused: if the reference's own mean is within ``n_se`` standard
    errors of zero in every component (an estimator that returns zeros would pass), it raises
    :class:`tutorlib.IdentityError` saying so. Returns nothing.
    """
    from tutorlib.checks import IdentityError, compare

    if not isinstance(label, str) or not label:
        raise ValueError(f"label must be a non-empty string, got {label!r}")
    n_se = positive_float("n_se", n_se)
    est = _per_sample("estimates", estimates)
    m = est.shape[1]
    if isinstance(reference, torch.Tensor) and reference.dim() == 2:
        ref = _per_sample("reference", reference)
        ref_mean, ref_var = ref.mean(0), ref.var(0) / ref.shape[0]
    else:
        ref_mean = torch.as_tensor(reference, dtype=torch.float64).reshape(-1)
        ref_var = torch.zeros_like(ref_mean)
    if ref_mean.shape[0] != m:
        raise ValueError(f"reference must have {m} components like estimates, got {ref_mean.shape[0]}")
    if not torch.isfinite(ref_mean).all():
        raise ValueError("reference contains non-finite values")
    mean = est.mean(0)
    se = torch.sqrt(est.var(0) / est.shape[0] + ref_var)
    inf = torch.tensor(math.inf, dtype=torch.float64)
    # a component with no noise at all (constant estimates against an exact value) must match exactly
    z = torch.where(se > 0, (mean - ref_mean).abs() / se, torch.where(mean == ref_mean, 0.0, inf))
    if components is None:
        if m % 2:
            raise ValueError(f"give the names of the {m} components (components=...)")
        labels, halves = gradient_names(m // 2), [(0, m // 2), (m // 2, m)]
    else:
        labels = [str(c) for c in components]
        if len(labels) != m:
            raise ValueError(f"components must name the {m} components, got {len(labels)} names")
        halves = [(0, m)]
    worst = int(z.argmax())
    power = float(torch.where(se > 0, ref_mean.abs() / se, torch.where(ref_mean == 0, 0.0, inf)).max())
    w = max(len(n) for n in (*names, "standard error"))
    lines = [f"  {label}: mean of {est.shape[0]:,} single-sample estimates per component"]
    for lo, hi in halves:
        head = labels[lo].split("_")[0] if components is None else ", ".join(labels)
        lines.append(f"    [{head}]")
        lines.append(f"      {names[0]:<{w}}: " + " ".join(f"{float(v):8.3f}" for v in mean[lo:hi]))
        lines.append(f"      {names[1]:<{w}}: " + " ".join(f"{float(v):8.3f}" for v in ref_mean[lo:hi]))
        lines.append(f"      {'standard error':<{w}}: " + " ".join(f"{float(v):8.3f}" for v in se[lo:hi]))
    lines.append(f"    an estimator returning zeros would be {power:.1f} standard errors off")
    print("\n".join(lines))
    if power <= n_se:
        raise IdentityError(f"{label}: too weak to fail: the reference is within {n_se:g} standard errors of "
                            f"zero in every component (at most {power:.2f}), so an estimator returning zeros "
                            "would pass; use more samples or a lower-variance estimator")
    compare(f"{label}: largest |difference| / standard error (at {labels[worst]})", float(z[worst]), 0.0,
            atol=n_se, names=("max_i |mean_i - ref_i| / se_i", "0"))


# --- chapter 4 (article 1, section 1.7): more than one sample of z per image ---------------------

def multi_sample_loss(model: VAE, x: torch.Tensor, samples: int, kl: str = "analytic",
                      beta: float = 1.0) -> dict[str, torch.Tensor]:
    """Su's loss with the reconstruction term averaged over ``samples`` reparameterised draws
    ``z_1..z_S ~ p(z|x)`` per image: ``mean_s -ln q(x|z_s) + beta * KL``, batch-averaged, with its
    two terms (the dict of :meth:`VAE.loss`). ``samples = 1`` is :meth:`VAE.loss`. With
    ``kl="sampled"`` the KL term is averaged over the same draws."""
    from tutorlib.divergences import kl_normal_std

    samples = positive_int("samples", samples)
    one_of("kl", kl, ("analytic", "sampled"))
    beta = positive_float("beta", beta, allow_zero=True)
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar, samples)  # (samples, batch, z_dim)
    rec = model.nll(x, z).mean(0)
    if kl == "analytic":
        kl_term = kl_normal_std(mu, logvar)
    else:
        zero = torch.zeros_like(z)
        kl_term = (gaussian_log_prob(z, mu, logvar) - gaussian_log_prob(z, zero, zero)).mean(0)
    rec, kl_term = rec.mean(), kl_term.mean()
    return {"loss": rec + beta * kl_term, "rec": rec, "kl": kl_term}


def loss_per_image(model: VAE, x: torch.Tensor, draws: int = 20, generator: torch.Generator | None = None) -> torch.Tensor:
    """Su's loss per image, ``E_{z~p(z|x)}[-ln q(x|z)] + KL(p(z|x) || q(z))`` (analytic KL), with the
    expectation estimated from ``draws`` reparameterised samples per image; shape (batch,). Pass
    a seeded ``generator`` to evaluate several models on the same noise (a paired comparison)."""
    from tutorlib.divergences import kl_normal_std

    draws = positive_int("draws", draws)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        u = torch.randn((draws, *mu.shape), generator=generator, dtype=mu.dtype).to(mu.device)
        z = model.reparameterize(mu, logvar, draws, u=u)
        rows = max(1, CHUNK // draws)  # images per decoder pass, so that memory stays bounded
        rec = torch.cat([model.nll(x[i:i + rows], z[:, i:i + rows]).mean(0) for i in range(0, len(x), rows)])
        return rec + kl_normal_std(mu, logvar)


def _trace_cov(g: torch.Tensor) -> tuple[float, float]:
    """The trace of the sample covariance of the rows of ``g`` (r, P) (the summed variance over the P
    columns) and its jackknife standard error. Leaving row i out removes ``r/(r-1) |g_i - mean|^2`` from
    the centred sum of squares, so the r leave-one-out values cost nothing extra."""
    r = g.shape[0]
    d2 = (g.double() - g.double().mean(0)).pow(2).sum(1)  # |g_i - mean|^2
    ss = float(d2.sum())
    if r < 3:
        return ss / (r - 1), math.inf
    loo = (ss - r / (r - 1) * d2) / (r - 2)
    se = math.sqrt((r - 1) / r * float((loo - loo.mean()).pow(2).sum()))
    return ss / (r - 1), se


def gradient_noise(model: VAE, x_train: torch.Tensor, samples: int = 1, batch_size: int = 100, reps: int = 20,
                   seed: int = 0, batches: int = 1) -> dict[str, float]:
    """Where the noise of a training step's gradient comes from, at the model's current weights.

    The gradient of :func:`multi_sample_loss` (``samples`` draws of z per image) w.r.t. all
    parameters is computed ``reps`` times on each of ``batches`` fixed, binarised batches with fresh
    draws of z (``"z"``: the variance due to sampling z alone, averaged over those batches), and
    ``reps`` times on fresh batches with fresh dynamic binarisation and fresh z (``"total"``: the
    noise a training step has). Each variance is the trace of the covariance (the variance summed
    over all parameters); ``"z_se"`` and ``"total_se"`` are their jackknife standard errors (for
    ``"z"``, the noise of the draws of z given the fixed batches). ``"signal"``: the squared norm of
    the mean gradient over the fresh batches. The same ``seed`` gives the same fixed batches for every
    ``samples``, so that two calls can be compared (:func:`check_gradient_noise`)."""
    samples, batch_size = positive_int("samples", samples), positive_int("batch_size", batch_size)
    reps, batches = positive_int("reps", reps, minimum=3), positive_int("batches", batches)
    if not isinstance(x_train, torch.Tensor) or x_train.dim() != 2 or len(x_train) < batch_size:
        raise ValueError(f"x_train must be an (n, {model.x_dim}) tensor with n >= batch_size = {batch_size}")
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    state = torch.get_rng_state()
    torch.manual_seed(seed)  # the draws of z inside the loss

    def grad(xb):
        loss = multi_sample_loss(model, xb, samples)["loss"]
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    def batch():
        return torch.bernoulli(x_train[torch.randperm(len(x_train), generator=gen)[:batch_size]], generator=gen)

    try:
        z_parts = []
        for _ in range(batches):
            fixed = batch()
            z_parts.append(_trace_cov(torch.stack([grad(fixed) for _ in range(reps)])))
        g_all = torch.stack([grad(batch()) for _ in range(reps)])
    finally:
        torch.set_rng_state(state)
    total, total_se = _trace_cov(g_all)
    z = sum(v for v, _ in z_parts) / batches
    z_se = math.sqrt(sum(se**2 for _, se in z_parts)) / batches
    return {"z": z, "z_se": z_se, "total": total, "total_se": total_se,
            "signal": float(g_all.double().mean(0).pow(2).sum())}


def check_gradient_noise(one: dict, many: dict, samples: int, n_se: float = 4.0) -> float:
    """Check the law of section 4.3: averaging the reconstruction term over ``samples`` independent
    draws of z divides the gradient variance that comes from z by ``samples``. ``one`` and ``many``
    are :func:`gradient_noise` results at the same weights and fixed batches (the same ``seed`` and
    ``batches``) with 1 and ``samples`` draws; the measured ratio ``one["z"] / many["z"]`` is compared
    with ``samples`` on a log scale, within ``n_se`` standard errors (from the two jackknife standard
    errors). Refuses (IdentityError) a check too noisy to tell ``samples`` from 1, which is what
    reusing one draw for all ``samples`` would give. Returns the measured ratio."""
    from tutorlib.checks import IdentityError, compare

    samples = positive_int("samples", samples, minimum=2)
    n_se = positive_float("n_se", n_se)
    for name, d in (("one", one), ("many", many)):
        if not isinstance(d, dict) or not {"z", "z_se"} <= set(d) or not d["z"] > 0 or not d["z_se"] >= 0:
            raise ValueError(f"{name} must be a gradient_noise result with z > 0 and z_se >= 0, got {d!r}")
    ratio = one["z"] / many["z"]
    se_log = math.sqrt((one["z_se"] / one["z"]) ** 2 + (many["z_se"] / many["z"]) ** 2)
    power = math.log(samples) / se_log if se_log > 0 else math.inf
    print(f"  variance from z, 1 draw / {samples} draws: {one['z']:.1f} / {many['z']:.1f} = {ratio:.2f} "
          f"(predicted {samples}); standard error of ln(ratio) {se_log:.3f}; reusing one draw "
          f"(ratio 1) would be {power:.1f} standard errors off")
    if power <= n_se:
        raise IdentityError(f"gradient noise: too weak to fail: ratio 1 is within {n_se:g} standard errors of "
                            f"{samples} ({power:.2f}); use more repetitions or batches")
    compare(f"ln(variance ratio) = ln {samples}", math.log(ratio), math.log(samples), atol=n_se * se_log,
            names=("measured", "predicted"))
    return ratio


def rescale_codes(model: VAE, scale) -> VAE:
    """A copy of ``model`` whose codes are scaled by ``scale`` (one factor c_i > 0 per latent
    coordinate): the encoder's last layer outputs ``c mu`` and ``logvar + 2 ln c`` (so ``sigma -> c sigma``)
    and the decoder's first layer divides its input by ``c``. Every reconstruction ``decode(z)`` at
    ``z = c (mu + sigma u)`` is then the original one at ``mu + sigma u``: only the KL term changes."""
    import copy

    if type(model).encode is not VAE.encode or not isinstance(model.encoder[-1], torch.nn.Linear) \
            or not isinstance(model.decoder[0], torch.nn.Linear):
        raise ValueError("model must be a tutorlib.vae.VAE whose encoder ends and decoder starts with a Linear layer")
    c = torch.as_tensor(scale, dtype=torch.float64).reshape(-1)
    if c.shape[0] != model.z_dim or not torch.isfinite(c).all() or not (c > 0).all():
        raise ValueError(f"scale must be {model.z_dim} finite positive numbers, got {scale!r}")
    out = copy.deepcopy(model)
    enc, dec, d = out.encoder[-1], out.decoder[0], model.z_dim
    with torch.no_grad():
        cw = c.to(enc.weight.dtype)
        enc.weight[:d] *= cw[:, None]
        enc.bias[:d] *= cw
        enc.bias[d:] += 2 * torch.log(cw)
        dec.weight /= cw[None, :]
    return out


def check_code_rescaling(model: VAE, x: torch.Tensor, draws: int = 20, seed: int = 0, atol: float = 1e-9,
                         rescale: Callable | None = None) -> dict:
    """Section 4.4: the loss can be lowered by rescaling the codes unless ``E[mu_i^2 + sigma_i^2] = 1``.

    With ``m_i = mean over x of mu_i(x)^2 + sigma_i(x)^2`` and the codes rescaled by ``c_i = m_i^(-1/2)``
    (:func:`rescale_codes`), the reconstructions are unchanged and the mean KL falls by
    ``(1/2) sum_i (m_i - 1 - ln m_i)`` (>= 0, zero only at m_i = 1). Computes the loss of both models
    (:func:`loss_per_image`, the same noise, in float64) and compares the measured fall with that
    prediction (``atol``: float64 rounding). ``rescale`` replaces :func:`rescale_codes` (for tests).
    Returns ``{"m": m_i, "predicted": ..., "measured": ..., "loss": the original mean loss}``."""
    import copy

    from tutorlib.checks import compare

    rescale = rescale_codes if rescale is None else rescale
    draws = positive_int("draws", draws)
    m64 = copy.deepcopy(model).double()  # float64: the two sides then differ only by rounding (~1e-13)
    x64 = model._check_x(x).double()
    with torch.no_grad():
        mu, logvar = m64.encode(x64)
        m = (mu**2 + logvar.exp()).mean(0)
    predicted = float(0.5 * (m - 1 - torch.log(m)).sum())
    scaled = rescale(m64, m.rsqrt())
    before = loss_per_image(m64, x64, draws, torch.Generator().manual_seed(seed))
    after = loss_per_image(scaled, x64, draws, torch.Generator().manual_seed(seed))
    measured = float((before - after).mean())
    compare("loss fall from rescaling the codes by m^(-1/2): measured vs (1/2) sum_i (m_i - 1 - ln m_i)",
            measured, predicted, atol=atol, names=("measured", "predicted"))
    return {"m": m.float().cpu(), "predicted": predicted, "measured": measured, "loss": float(before.mean())}


# --- training -------------------------------------------------------------------------------------

OBJECTIVES = ("elbo", "elbo-sampled", "iwae", "prior")


def _bernoulli(p: torch.Tensor) -> torch.Tensor:
    """One Bernoulli(p) draw per entry. On the CPU this is ``rand < p``: exactly the numbers (and the use of
    the random state) of ``torch.bernoulli(p)``, at about a third of its cost (a test checks they agree)."""
    if p.device.type != "cpu":
        return torch.bernoulli(p)
    return (torch.rand_like(p) < p).to(p.dtype)


def fit(model: VAE, x_train: torch.Tensor, steps: int, objective: str = "elbo", k: int = 1, batch_size: int = 100,
        lr: float = 1e-3, binarize: str | None = "dynamic", beta: float = 1.0, seed: int = 0,
        checkpoint=None, log_every: int = 10, desc: str | None = None, samples: int = 1):
    """Train ``model`` on ``x_train`` (intensities in [0, 1]) with :func:`tutorlib.train.train`.

    ``objective``: ``"elbo"`` (analytic KL), ``"elbo-sampled"`` (KL sampled too), ``"iwae"``
    (maximise ``L_k``) or ``"prior"`` (the prior-sampling objective with ``k`` shared prior samples).
    ``binarize``: ``"dynamic"`` (a fresh Bernoulli draw of every batch, as Burda et al.),
    ``"threshold"`` (fixed, pixel > 0.5) or None (use ``x_train`` as it is, e.g. for a Gaussian decoder).
    ``samples`` (ELBO objectives only): draws of z per image for the reconstruction term
    (:func:`multi_sample_loss`; 1, the standard VAE, by default).
    Returns the :class:`tutorlib.train.History` (``loss``, and ``rec``/``kl`` for the ELBO objectives).
    """
    from tutorlib.data import binarize as binarize_fn
    from tutorlib.train import Batches, train

    one_of("objective", objective, OBJECTIVES)
    if binarize is not None:
        one_of("binarize", binarize, ("dynamic", "threshold"))
    k = positive_int("k", k)
    samples = positive_int("samples", samples)
    if samples > 1 and objective not in ("elbo", "elbo-sampled"):
        raise ValueError(f"samples only applies to the ELBO objectives, got samples={samples} with objective={objective!r}")
    x_fixed = binarize_fn(x_train, "threshold") if binarize == "threshold" else x_train
    batches = Batches(x_fixed, batch_size=min(positive_int("batch_size", batch_size), len(x_fixed)), seed=seed)

    def loss_fn(x):
        if binarize == "dynamic":
            x = _bernoulli(x)
        if objective in ("elbo", "elbo-sampled"):
            kl = "analytic" if objective == "elbo" else "sampled"
            if samples > 1:
                return multi_sample_loss(model, x, samples, kl=kl, beta=beta)
            return model.loss(x, kl=kl, beta=beta)
        if objective == "iwae":
            return -model.iwae_bound(x, k).mean()
        return model.prior_sampling_loss(x, k)

    opt = torch.optim.Adam(model.parameters(), lr=positive_float("lr", lr))
    return train(model, opt, loss_fn, batches, steps, checkpoint=checkpoint, log_every=log_every,
                 desc=desc or f"{objective} k={k}")


# --- Burda et al. (2016), one stochastic layer: the paper's recipe -------------------------------------

#: Burda, Grosse & Salakhutdinov (2016), Table 1, MNIST, one stochastic layer: test NLL in nats.
BURDA_PAPER_NLL = {("elbo", 1): 86.76, ("elbo", 5): 86.47, ("elbo", 50): 86.35,
                   ("iwae", 1): 86.76, ("iwae", 5): 85.54, ("iwae", 50): 84.78}
#: The paper's optimiser (section 5): Adam with beta1 = 0.9, beta2 = 0.999, epsilon = 1e-4, minibatches of 20.
BURDA_ADAM = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-4}
BURDA_BATCH = 20
BURDA_STAGES = 8
#: Where the authors' released code (github.com/yburda/iwae) differs from the paper's text. The book
#: follows the paper; these are recorded with every result so that a reader can tell.
BURDA_CODE_NOTES = (
    "the released optimizers.py uses beta1 = 0.99 and starts Adam's second moment at ones; the paper says "
    "beta1 = 0.9 and the book follows the paper (PyTorch's Adam)",
    "the released code adds epsilon to sqrt(v) with the bias correction folded into the step size "
    "(Kingma & Ba's 'efficient' form); PyTorch adds it to the bias-corrected sqrt(v)",
    "the released experiments.py rounds the learning rates to 1e-4 * round(10^(1 - i/7), 1) (7.2e-4, 5.2e-4, "
    "...); the book uses the paper's 1e-3 * 10^(-i/7)",
    "the released datasets.py holds out the last 400 training digits as a validation set it never uses and "
    "trains on 59,600; the book trains on all 60,000, as the paper says",
    "the released train.py visits the minibatches in the stored order every epoch; the book draws a fresh "
    "permutation per epoch (tutorlib.train.Batches)",
)


class BurdaVAE(VAE):
    """Burda et al.'s one-stochastic-layer VAE: :class:`VAE` with tanh networks whose encoder's last
    layer outputs ``(mu, ln sigma)``, as in the authors' code (``sigma = exp(W h + b)``), so that
    ``encode`` returns ``(mu, 2 ln sigma)``. Initialise it with :func:`burda_init_`."""

    def __init__(self, x_dim: int = 784, z_dim: int = 50, hidden: Sequence[int] = (200, 200)) -> None:
        super().__init__(x_dim, z_dim, hidden=hidden, likelihood="bernoulli", activation="tanh")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_sigma = self.encoder(self._check_x(x)).chunk(2, dim=-1)
        return mu, 2 * log_sigma


def _glorot(n_in: int, n_out: int, seed: int) -> torch.Tensor:
    """The authors' ``nnet.Linear.random``: ``RandomState(seed).uniform(+-sqrt(6 / (n_in + n_out)))``
    of shape (n_in, n_out) -- a fresh generator for every layer -- as a torch weight (n_out, n_in)."""
    import numpy as np

    scale = math.sqrt(6.0 / (n_in + n_out))
    w = np.random.RandomState(seed).uniform(low=-scale, high=scale, size=(n_in, n_out))
    return torch.from_numpy(w.T.copy())


@torch.no_grad()
def burda_init_(model: VAE, train_mean: torch.Tensor, seed: int = 123) -> VAE:
    """Initialise ``model`` (a :class:`BurdaVAE`) as the authors' code does, in place.

    Every linear layer: weights uniform in ``+-sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio for
    tanh), each drawn from a fresh ``numpy.random.RandomState(seed)`` (so layers of equal shape
    start equal, the encoder's ``mu`` and ``ln sigma`` heads included: both are 200 -> 50 layers
    there), biases zero; the decoder's output bias is the logit of the training mean, clipped to
    [0.001, 0.999] (``datasets.get_train_bias_np``). ``train_mean``: the mean training image (x_dim,).
    """
    if not isinstance(model, VAE) or model.likelihood != "bernoulli":
        raise ValueError("model must be a Bernoulli VAE (a BurdaVAE)")
    if not isinstance(train_mean, torch.Tensor) or tuple(train_mean.shape) != (model.x_dim,):
        raise ValueError(f"train_mean must be a tensor of shape ({model.x_dim},), got {tuple(getattr(train_mean, 'shape', ()))}")
    seed = positive_int("seed", seed, minimum=0)
    enc = [m for m in model.encoder if isinstance(m, torch.nn.Linear)]
    dec = [m for m in model.decoder if isinstance(m, torch.nn.Linear)]
    for layer in enc[:-1] + dec:
        layer.weight.copy_(_glorot(layer.in_features, layer.out_features, seed))
        layer.bias.zero_()
    head = enc[-1]  # (mu, ln sigma): two separate n_in -> z_dim layers in the authors' code
    z = head.out_features // 2
    head.weight.copy_(torch.cat([_glorot(head.in_features, z, seed), _glorot(head.in_features, z, seed)]))
    head.bias.zero_()
    mean = train_mean.detach().double().clamp(0.001, 0.999)
    dec[-1].bias.copy_(torch.log(mean / (1 - mean)))
    return model


def burda_schedule(scale: float = 1.0, steps_per_epoch: int = 3000) -> list[dict]:
    """The paper's schedule: stage ``i = 0..7`` trains ``3^i`` epochs at learning rate
    ``1e-3 * 10^(-i/7)`` (3,280 epochs in all). ``scale`` compresses every stage to ``3^i * scale``
    epochs (at least one step each), keeping the eight learning rates. Returns one dict per stage:
    ``stage``, ``epochs`` (possibly fractional), ``steps``, ``lr``."""
    scale = positive_float("scale", scale)
    steps_per_epoch = positive_int("steps_per_epoch", steps_per_epoch)
    out = []
    for i in range(BURDA_STAGES):
        steps = max(1, round(3**i * scale * steps_per_epoch))
        out.append({"stage": i, "epochs": steps / steps_per_epoch, "steps": steps,
                    "lr": BURDA_ADAM["lr"] * 10 ** (-i / 7)})
    return out


def burda_lr_factor(schedule: Sequence[dict]) -> Callable[[int], float]:
    """``step -> lr(step) / 1e-3`` for a :func:`burda_schedule`: the factor
    :func:`tutorlib.train.train` applies to the optimiser's initial learning rate."""
    bounds, factors, total = [], [], 0
    for stage in schedule:
        total += stage["steps"]
        bounds.append(total)
        factors.append(stage["lr"] / BURDA_ADAM["lr"])

    def factor(step: int) -> float:
        import bisect

        return factors[min(bisect.bisect_right(bounds, step), len(factors) - 1)]

    return factor


def burda_loss(model: VAE, x: torch.Tensor, objective: str, k: int) -> dict[str, torch.Tensor]:
    """One step's loss of the authors' code on a batch of intensities ``x``: a fresh Bernoulli draw
    of the batch (dynamic binarisation), ``k`` encoder samples per image, and minus the bound
    *summed* over the batch (the code sums; with Adam this sets the scale epsilon = 1e-4 acts on):
    the IWAE bound ``ln (1/k) sum_i w_i`` or, for the VAE, the all-sampled ELBO ``(1/k) sum_i ln w_i``.
    ``bound`` is the batch mean of the bound (nats per image)."""
    one_of("objective", objective, ("elbo", "iwae"))
    lw = model.log_weights(torch.bernoulli(x), positive_int("k", k))
    bound = torch.logsumexp(lw, dim=0) - math.log(k) if objective == "iwae" else lw.mean(dim=0)
    return {"loss": -bound.sum(), "bound": bound.mean()}


def burda_experiment(objective: str, k: int, schedule_scale: float = 1.0, *, z_dim: int = 50, hidden=(200, 200),
                     batch_size: int = BURDA_BATCH, eval_k: int = 5000, n_test: int | None = None,
                     source: str = "auto", data=None, checkpoint_dir=None, seed: int = 0,
                     forecast: bool = True, log_every: int = 100) -> dict:
    """Burda et al.'s one-stochastic-layer MNIST experiment (Table 1) with the paper's recipe: a VAE
    (``objective="elbo"``, the all-sampled ELBO) or an IWAE (``"iwae"``) with ``k`` samples;
    :class:`BurdaVAE` 784-200-200-50 tanh networks initialised by :func:`burda_init_`;
    dynamically binarised batches of 20; Adam (0.9, 0.999, eps 1e-4); the schedule of
    :func:`burda_schedule` (3,280 epochs; ``schedule_scale`` compresses it); then the test NLL
    estimated with ``eval_k = 5000`` importance samples on the 10,000 test digits, each
    binarised once by a seeded draw (nats; lower is better).

    Data: full MNIST (``data``: the ``mnist.npz`` path, default ``$TUTORLIB_DATA`` or the cache;
    :class:`tutorlib.data.MissingDataError` before anything trains when it is missing), except
    with ``source="subset"`` -- or ``"auto"`` in quick mode -- which trains on the embedded digits
    and says so in ``deviations``. Prints the projected time first (``forecast``). Checkpointed in
    ``checkpoint_dir`` under a name with the objective, k, sizes, steps, seed and data, so an
    interrupted run resumes and a changed run never resumes a stale file.

    Returns a dict with ``test_nll``, ``paper``, the ``schedule``, ``steps``, ``epochs``, the
    ``data`` record, ``deviations`` (from the paper), ``code_notes`` (where the authors' code
    differs from the paper), the run record (device, commit, ...) and the ``history``.
    """
    import copy
    import time
    from pathlib import Path

    from tutorlib import data as data_mod
    from tutorlib.metrics import iwae_nll
    from tutorlib.runtime import device as best_device
    from tutorlib.runtime import run_mode, run_record
    from tutorlib.train import Batches, checkpoint_step, forecast as forecast_fn, train

    one_of("objective", objective, ("elbo", "iwae"))
    one_of("source", source, ("auto", "full", "subset"))
    k, seed = positive_int("k", k), positive_int("seed", seed, minimum=0)
    schedule_scale = positive_float("schedule_scale", schedule_scale)
    batch_size, eval_k = positive_int("batch_size", batch_size), positive_int("eval_k", eval_k)
    hidden = tuple(positive_int("hidden", h) for h in ([hidden] if isinstance(hidden, int) else hidden))
    subset = source == "subset" or (source == "auto" and run_mode() == "quick")
    if subset:
        train_set, test_set = data_mod.mnist_subset("train"), data_mod.mnist_subset("test")
    else:  # no fallback: a missing file stops here, before anything is built or trained
        train_set = data_mod.mnist("train", source="full", path=data, fallback=False)
        test_set = data_mod.mnist("test", source="full", path=data, fallback=False)
    dev = best_device()
    x_train, x_test = train_set.x.to(dev), test_set.x.to(dev)
    if n_test is not None:
        x_test = x_test[:positive_int("n_test", n_test)]
    steps_per_epoch = len(x_train) // batch_size
    schedule = burda_schedule(schedule_scale, steps_per_epoch)
    steps = sum(stage["steps"] for stage in schedule)
    epochs = steps / steps_per_epoch

    deviations = []
    if subset:
        deviations.append(f"data: the embedded subset ({len(train_set):,} training / {len(test_set):,} test digits), "
                          f"not full MNIST")
    if schedule_scale != 1.0:
        deviations.append(f"schedule compressed x{schedule_scale:g}: {epochs:,.4g} epochs instead of 3,280 "
                          f"(3^i x {schedule_scale:g} epochs at lr 1e-3 * 10^(-i/7), i = 0..7)")
    if (z_dim, hidden) != (50, (200, 200)):
        deviations.append(f"network 784-{'-'.join(map(str, hidden))}-{z_dim} instead of 784-200-200-50")
    if batch_size != BURDA_BATCH:
        deviations.append(f"batch {batch_size} instead of 20")
    if eval_k != 5000:
        deviations.append(f"test NLL with k = {eval_k} instead of 5000")
    if len(x_test) != len(test_set) or (not subset and len(test_set) != 10_000):
        deviations.append(f"test NLL on {len(x_test):,} test digits")

    def build():
        torch.manual_seed(seed)
        model = BurdaVAE(784, z_dim, hidden).to(dev)
        burda_init_(model, x_train.mean(0))
        return model

    def fit(model, n, checkpoint=None, progress=None):
        opt = torch.optim.Adam(model.parameters(), **BURDA_ADAM)
        return train(model, opt, lambda x: burda_loss(model, x, objective, k),
                     Batches(x_train, batch_size=batch_size, seed=seed), n, checkpoint=checkpoint,
                     checkpoint_every=20_000, log_every=log_every, lr_schedule=burda_lr_factor(schedule),
                     desc=f"Burda {'VAE' if objective == 'elbo' else 'IWAE'} k={k}", progress=progress)

    model = build()
    x_eval = data_mod.binarize(x_test, "dynamic", generator=torch.Generator(device=dev).manual_seed(seed))
    name = (f"burda_{objective}_k{k}_z{z_dim}_h{'x'.join(map(str, hidden))}_b{batch_size}_steps{steps}_s{seed}_"
            f"{'subset' if subset else 'full'}.pt")
    ckpt = Path(checkpoint_dir) / name if checkpoint_dir is not None else None
    if forecast:
        eval_probe = x_eval[:min(len(x_eval), 20)]
        with torch.no_grad():
            t0 = time.perf_counter()
            iwae_nll(model, eval_probe, k=eval_k)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            eval_seconds = (time.perf_counter() - t0) * len(x_eval) / len(eval_probe)
        forecast_fn(lambda n: fit(copy.deepcopy(model), n, progress=False), steps, done=checkpoint_step(ckpt),
                    label=f"Burda {objective} k={k} ({epochs:,.4g} epochs)", extra_seconds=eval_seconds,
                    when="always")
    start = time.perf_counter()
    history = fit(model, steps, checkpoint=ckpt)
    train_seconds = time.perf_counter() - start
    model.eval()
    nll = float(iwae_nll(model, x_eval, k=eval_k).mean())
    seconds = time.perf_counter() - start
    return run_record(seed=seed, objective=objective, k=k, test_nll=nll, paper=BURDA_PAPER_NLL.get((objective, k)),
                      eval_k=eval_k, n_test=len(x_eval), steps=steps, epochs=epochs, schedule_scale=schedule_scale,
                      schedule=schedule, batch_size=batch_size, optimizer={**BURDA_ADAM, "betas": list(BURDA_ADAM["betas"])},
                      loss="minus the bound summed over the batch",
                      init="authors' code: Glorot uniform from RandomState(123) per layer, zero biases, "
                           "decoder output bias = logit(training mean)",
                      binarization="dynamic (every training batch); test set: one seeded Bernoulli draw",
                      data=data_mod.record(train_set, test_set), deviations=deviations,
                      code_notes=list(BURDA_CODE_NOTES), train_seconds=train_seconds, seconds=seconds,
                      checkpoint=str(ckpt) if ckpt else None, history=history, model=model)


# --- chapter 2: a model small enough to integrate exactly -------------------------------------------

class ToyJoint:
    """Chapter 2's exact check: ``D`` binary pixels (all ``2^D`` images enumerable), a 1-D latent ``z``
    integrated on a grid, a data distribution ``p_data`` over the images, a Gaussian encoder given by
    a table ``(mu_x, logvar_x)``, the prior N(0, 1) and a decoder ``q(x|z) = prod_k Bernoulli(sigmoid(a_k z + b_k))``.

    Every quantity is computed by exact sums over images and quadrature over ``z`` (float64).
    """

    def __init__(self, dim: int = 4, seed: int = 0, grid: int = 20001, z_max: float = 12.0) -> None:
        self.dim = positive_int("dim", dim)
        if self.dim > 12:
            raise ValueError(f"dim must be at most 12 (2^dim images are enumerated), got {dim}")
        g = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
        n = 2**self.dim
        self.images = ((torch.arange(n)[:, None] >> torch.arange(self.dim)) & 1).double()  # (n, dim)
        self.p_data = torch.softmax(torch.randn(n, generator=g, dtype=torch.float64) * 1.5, 0)
        self._draw_model(g)
        self.z = torch.linspace(-z_max, z_max, positive_int("grid", grid, minimum=3), dtype=torch.float64)
        self.dz = float(self.z[1] - self.z[0])

    def _draw_model(self, g: torch.Generator) -> None:
        n = len(self.images)
        self.mu = torch.randn(n, generator=g, dtype=torch.float64)
        self.logvar = torch.randn(n, generator=g, dtype=torch.float64) * 0.5 - 1.0
        self.a = torch.randn(self.dim, generator=g, dtype=torch.float64) * 2
        self.b = torch.randn(self.dim, generator=g, dtype=torch.float64)

    def with_model(self, seed: int) -> "ToyJoint":
        """A copy with the same data distribution and grid but a new random encoder and decoder."""
        import copy

        other = copy.copy(self)
        other._draw_model(torch.Generator().manual_seed(positive_int("seed", seed, minimum=0) + 7919))
        return other

    def log_decoder(self) -> torch.Tensor:
        """``ln q(x|z)`` on (images, grid)."""
        logits = self.a[None, :, None] * self.z[None, None, :] + self.b[None, :, None]  # (1, dim, grid)
        x = self.images[:, :, None]
        return -F.binary_cross_entropy_with_logits(logits.expand(len(x), -1, -1), x.expand(-1, -1, len(self.z)),
                                                   reduction="none").sum(1)

    def log_encoder(self, mu: torch.Tensor | None = None, logvar: torch.Tensor | None = None) -> torch.Tensor:
        """``ln p(z|x)`` on (images, grid) (for the table ``mu``, ``logvar`` if given, else the model's)."""
        mu = self.mu if mu is None else mu
        logvar = self.logvar if logvar is None else logvar
        return gaussian_log_prob(self.z[None, :, None], mu[:, None, None], logvar[:, None, None])

    def log_prior(self) -> torch.Tensor:
        return -0.5 * (LOG_2PI + self.z**2)

    def _integrate(self, f: torch.Tensor) -> torch.Tensor:
        return f.sum(-1) * self.dz  # the grid is fine and the integrands vanish at its ends

    def joint_kl(self) -> float:
        """``KL(p(x, z) || q(x, z))`` with ``p(x, z) = p_data(x) p(z|x)`` and ``q(x, z) = q(x|z) q(z)``."""
        le = self.log_encoder()
        inner = self._integrate(le.exp() * (self.p_data.log()[:, None] + le - self.log_decoder() - self.log_prior()))
        return float((self.p_data * inner).sum())

    def _loss_per_image(self, mu: torch.Tensor, logvar: torch.Tensor, log_dec: torch.Tensor) -> torch.Tensor:
        from tutorlib.divergences import kl_normal_std

        rec = self._integrate(self.log_encoder(mu, logvar).exp() * -log_dec)
        return rec + kl_normal_std(mu[:, None], logvar[:, None])

    def _loss(self, mu: torch.Tensor, logvar: torch.Tensor, log_dec: torch.Tensor) -> torch.Tensor:
        return (self.p_data * self._loss_per_image(mu, logvar, log_dec)).sum()

    def loss(self) -> float:
        """Su's loss ``L = E_x[ E_{z~p(z|x)}[-ln q(x|z)] + KL(p(z|x) || q(z)) ]`` (analytic KL)."""
        return float(self._loss(self.mu, self.logvar, self.log_decoder()))

    def loss_terms(self) -> tuple[float, float]:
        """The two terms of :meth:`loss`: ``E_x E_z[-ln q(x|z)]`` and ``E_x KL(p(z|x) || q(z))``."""
        from tutorlib.divergences import kl_normal_std

        rec = self._integrate(self.log_encoder().exp() * -self.log_decoder())
        kl = kl_normal_std(self.mu[:, None], self.logvar[:, None])
        return float((self.p_data * rec).sum()), float((self.p_data * kl).sum())

    def data_log_likelihood(self) -> float:
        """``E_x[ln p_data(x)]`` (minus the data's entropy)."""
        return float((self.p_data * self.p_data.log()).sum())

    def log_marginal(self) -> torch.Tensor:
        """``ln q(x) = ln int q(x|z) q(z) dz`` for every image."""
        return torch.logsumexp(self.log_decoder() + self.log_prior(), dim=-1) + math.log(self.dz)

    def log_posterior(self) -> torch.Tensor:
        """The model's exact posterior ``ln q(z|x) = ln q(x|z) + ln q(z) - ln q(x)`` on (images, grid)."""
        return self.log_decoder() + self.log_prior() - self.log_marginal()[:, None]

    def posterior_gap(self) -> float:
        """``E_x[KL(p(z|x) || q(z|x))]`` with the exact posterior ``q(z|x) = q(x|z) q(z) / q(x)``."""
        le = self.log_encoder()
        return float((self.p_data * self._integrate(le.exp() * (le - self.log_posterior()))).sum())

    def fit_encoder(self, max_iter: int = 100) -> list[float]:
        """Minimise :meth:`loss` over the encoder table ``(mu, logvar)`` (decoder and data fixed) with
        L-BFGS, in place. Since ``L = -E ln q(x) + gap`` and ``q(x)`` does not depend on the encoder,
        this minimises the posterior gap. Each image's ``(mu, logvar)`` enters only its own term, so
        the unweighted sum of the per-image losses has the same minimiser and is better conditioned;
        that is what L-BFGS minimises. Returns the gap ``L + E ln q(x)`` after each evaluation."""
        max_iter = positive_int("max_iter", max_iter)
        log_dec = self.log_decoder()
        nll = -float((self.p_data * self.log_marginal()).sum())
        mu = self.mu.clone().requires_grad_(True)
        logvar = self.logvar.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([mu, logvar], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter,
                                tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe")
        gaps = []

        def closure():
            opt.zero_grad()
            per_image = self._loss_per_image(mu, logvar, log_dec)
            per_image.sum().backward()
            gaps.append(float((self.p_data * per_image.detach()).sum()) - nll)
            return per_image.sum()

        opt.step(closure)
        self.mu, self.logvar = mu.detach(), logvar.detach()
        return gaps

    def log_affinity(self) -> torch.Tensor:
        """``ln g(x)`` with ``g(x) = int sqrt(p(z|x) q(x|z) q(z)) dz``, per image: the Bhattacharyya
        coefficient of the joints is ``sum_x sqrt(p_data(x)) g(x) = E_{x~p_data}[p_data(x)^(-1/2) g(x)]``."""
        half = 0.5 * (self.log_encoder() + self.log_decoder() + self.log_prior())
        return torch.logsumexp(half, dim=-1) + math.log(self.dz)

    def bhattacharyya_joint(self) -> float:
        """``D_B(p(x, z), q(x, z)) = -ln sum_x sqrt(p_data(x)) g(x)``: needs ``p_data(x)`` at every image."""
        return float(-torch.logsumexp(0.5 * self.p_data.log() + self.log_affinity(), dim=0))

    def bhattacharyya_without_density(self) -> float:
        """``-ln E_{x~p_data}[g(x)]``: the coefficient with the unknown factor ``p_data(x)^(-1/2)`` left
        out -- what samples of the data alone could estimate. Not ``D_B`` up to a constant (chapter 2)."""
        return float(-torch.logsumexp(self.p_data.log() + self.log_affinity(), dim=0))


def check_bounds(loss: float, nll: float, entropy: float) -> None:
    """Chapter 2: ``L >= -E ln q(x) >= -E ln p(x) = H(p) >= 0``, the chain that bounds the loss of a
    model of *discrete* data below by a positive number (the data's entropy). Raises
    :class:`tutorlib.IdentityError` where a link breaks; prints the chain."""
    from tutorlib._validate import finite_float
    from tutorlib.checks import IdentityError

    loss, nll, entropy = finite_float("loss", loss), finite_float("nll", nll), finite_float("entropy", entropy)
    ok = loss >= nll >= entropy >= 0
    print(f"{'✓' if ok else '✗'} L = {loss:.4f} >= -E ln q(x) = {nll:.4f} >= -E ln p(x) = H(p) = {entropy:.4f} >= 0")
    if not ok:
        raise IdentityError(f"the chain L >= -E ln q(x) >= H(p) >= 0 is broken: {loss:.6g}, {nll:.6g}, {entropy:.6g}")


def _bruteforce_log_joint(bits, a, b):
    """``z -> ln q(x|z) + ln q(z)`` for one image ``bits``, in plain Python floats (for the brute force)."""

    def f(z):
        out = -0.5 * (math.log(2 * math.pi) + z * z)
        for bit, ak, bk in zip(bits, a, b):
            t = ak * z + bk  # ln sigmoid(t) = -ln(1 + e^-t), computed stably
            out += -math.log1p(math.exp(-t)) if t > 0 else t - math.log1p(math.exp(t))
            if not bit:
                out -= t  # ln(1 - sigmoid(t)) = ln sigmoid(t) - t
        return out

    return f


def _bruteforce_args(p_data, mu, logvar, a, b):
    p_data, mu, logvar, a, b = ([float(v) for v in t] for t in (p_data, mu, logvar, a, b))
    dim = len(a)
    if len(p_data) != 2**dim or len(mu) != len(p_data) or len(logvar) != len(p_data) or len(b) != dim:
        raise ValueError("p_data, mu and logvar need 2**dim entries and a, b dim entries")
    return p_data, mu, logvar, a, b, dim


def _bruteforce_per_image_loss(m, lv, log_joint, z_max):
    """``int p(z|x) [ln p(z|x) - ln q(x|z) - ln q(z)] dz`` by adaptive quadrature (plain floats)."""
    from scipy import integrate

    s2 = math.exp(lv)

    def integrand(z):
        log_enc = -0.5 * (math.log(2 * math.pi * s2) + (z - m) ** 2 / s2)
        return math.exp(log_enc) * (log_enc - log_joint(z))

    val, _ = integrate.quad(integrand, m - z_max * math.sqrt(s2), m + z_max * math.sqrt(s2),
                            epsabs=1e-13, epsrel=1e-12, limit=200)
    return val


def toy_joint_kl_bruteforce(p_data, mu, logvar, a, b, z_max: float = 40.0) -> float:
    """Chapter 2: ``KL(p(x, z) || q(x, z))`` of a :class:`ToyJoint`'s parameters, written from the
    definition with plain Python floats and SciPy's adaptive quadrature over ``z`` -- no helper shared
    with :class:`ToyJoint` (which uses torch on a fixed grid)."""
    p_data, mu, logvar, a, b, dim = _bruteforce_args(p_data, mu, logvar, a, b)
    total = 0.0
    for i, (px, m, lv) in enumerate(zip(p_data, mu, logvar)):
        log_joint = _bruteforce_log_joint([(i >> k) & 1 for k in range(dim)], a, b)
        # p(x, z) / q(x, z) = p(x) p(z|x) / (q(x|z) q(z)); p(z|x) integrates to 1, so ln p(x) comes out
        total += px * (math.log(px) + _bruteforce_per_image_loss(m, lv, log_joint, z_max))
    return total


def toy_log_marginal_bruteforce(a, b, z_max: float = 40.0) -> list[float]:
    """Chapter 2: the model's ``ln q(x) = ln int q(x|z) q(z) dz`` for every image ``x`` of a
    :class:`ToyJoint` with decoder ``(a, b)``, by SciPy's adaptive quadrature of the definition in plain
    floats (the integrand is rescaled by its value at the mode, so tiny ``q(x)`` keep full precision)."""
    from scipy import integrate, optimize

    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) != len(b) or not a:
        raise ValueError("a and b need the same, non-zero length")
    out = []
    for i in range(2 ** len(a)):
        log_joint = _bruteforce_log_joint([(i >> k) & 1 for k in range(len(a))], a, b)
        mode = optimize.minimize_scalar(lambda z: -log_joint(z), bounds=(-z_max, z_max), method="bounded").x
        peak = log_joint(mode)
        val, _ = integrate.quad(lambda z: math.exp(log_joint(z) - peak), -z_max, z_max, points=[mode],
                                epsabs=0.0, epsrel=1e-13, limit=400)
        out.append(peak + math.log(val))
    return out


def toy_posterior_gap_bruteforce(p_data, mu, logvar, a, b, z_max: float = 40.0) -> float:
    """Chapter 2: the posterior gap ``E_x[KL(p(z|x) || q(z|x))]`` with the exact posterior
    ``q(z|x) = q(x|z) q(z) / q(x)``, from the definition by quadrature, with ``ln q(x)`` from
    :func:`toy_log_marginal_bruteforce` (nothing shared with :class:`ToyJoint`)."""
    p_data, mu, logvar, a, b, dim = _bruteforce_args(p_data, mu, logvar, a, b)
    log_q = toy_log_marginal_bruteforce(a, b, z_max)
    total = 0.0
    for i, (px, m, lv) in enumerate(zip(p_data, mu, logvar)):
        log_joint = _bruteforce_log_joint([(i >> k) & 1 for k in range(dim)], a, b)
        # ln p(z|x) - ln q(z|x) = ln p(z|x) - ln q(x|z) - ln q(z) + ln q(x)
        total += px * (_bruteforce_per_image_loss(m, lv, log_joint, z_max) + log_q[i])
    return total


#: Tolerance of the toy's grid-vs-quadrature checks: the largest difference measured over 4 data
#: seeds x 3 random models x (random, fitted) encoders is 7e-12 (the grid's Riemann sum is
#: spectrally accurate for these smooth, fast-decaying integrands); 1e-10 leaves a margin of 14.
TOY_BRUTEFORCE_ATOL = 1e-10


def check_toy_joint_kl(toy: ToyJoint) -> None:
    """Chapter 2: the toy's joint KL and ``E ln p(x) + L`` (each from the library's grid arrays)
    against :func:`toy_joint_kl_bruteforce` (SciPy's adaptive quadrature of the definition), to
    :data:`TOY_BRUTEFORCE_ATOL`."""
    from tutorlib.checks import compare

    if not isinstance(toy, ToyJoint):
        raise ValueError(f"toy must be a ToyJoint, got {type(toy).__name__}")
    brute = toy_joint_kl_bruteforce(toy.p_data, toy.mu, toy.logvar, toy.a, toy.b)
    compare("KL of the joints, grid vs brute force", toy.joint_kl(), brute, atol=TOY_BRUTEFORCE_ATOL,
            names=("ToyJoint.joint_kl", "scipy quad of the definition"))
    compare("E ln p(x) + L vs the brute-force joint KL", toy.data_log_likelihood() + toy.loss(), brute,
            atol=TOY_BRUTEFORCE_ATOL, names=("E ln p(x) + L", "scipy quad of the definition"))


def check_toy_posterior(toy: ToyJoint) -> None:
    """Chapter 2: the model's ``ln q(x)`` for every image and the posterior gap, from the library's
    grid (:meth:`ToyJoint.log_marginal`, :meth:`ToyJoint.posterior_gap`), against the brute-force
    quadratures :func:`toy_log_marginal_bruteforce` and :func:`toy_posterior_gap_bruteforce`, to
    :data:`TOY_BRUTEFORCE_ATOL`. (The grid identity ``L = -E ln q(x) + gap`` cannot catch an error in
    ``ln q(x)``: the gap is computed from the exact posterior, which divides by ``q(x)``, so ``ln q(x)``
    cancels from it. This check can.)"""
    import numpy as np

    from tutorlib.checks import compare

    if not isinstance(toy, ToyJoint):
        raise ValueError(f"toy must be a ToyJoint, got {type(toy).__name__}")
    compare("ln q(x) for each of the images, grid vs brute force", toy.log_marginal(),
            np.array(toy_log_marginal_bruteforce(toy.a, toy.b)), atol=TOY_BRUTEFORCE_ATOL,
            names=("ToyJoint.log_marginal", "scipy quad of int q(x|z) q(z) dz"))
    compare("posterior gap E KL(p(z|x) || q(z|x)), grid vs brute force", toy.posterior_gap(),
            toy_posterior_gap_bruteforce(toy.p_data, toy.mu, toy.logvar, toy.a, toy.b), atol=TOY_BRUTEFORCE_ATOL,
            names=("ToyJoint.posterior_gap", "scipy quad of the definition"))


def gaussian_optimum_residuals(toy: ToyJoint):
    """Chapter 2: for each image, the two conditions met by the best Gaussian ``N(mu, sigma^2)`` for the
    exact posterior (the minimum of ``KL(N(mu, sigma^2) || q(z|x))`` over ``mu`` and ``ln sigma^2``):
    returns ``(E_p[d/dz ln q(z|x)], sigma^2 E_p[d^2/dz^2 ln q(z|x)] + 1)``, both 0 at the optimum.

    The derivatives are the analytic ``sum_k a_k (x_k - sigmoid(a_k z + b_k)) - z`` and
    ``-sum_k a_k^2 s_k (1 - s_k) - 1``, the expectations 150-point Gauss-Hermite sums (NumPy;
    converged to ~1e-12 here, where 60 points leave 1e-6): nothing shared with the loss's grid."""
    import numpy as np

    if not isinstance(toy, ToyJoint):
        raise ValueError(f"toy must be a ToyJoint, got {type(toy).__name__}")
    nodes, weights = np.polynomial.hermite_e.hermegauss(150)  # for E over N(0, 1)
    weights = weights / weights.sum()
    mu, sigma = toy.mu.numpy(), np.exp(0.5 * toy.logvar.numpy())
    z = mu[:, None] + sigma[:, None] * nodes[None, :]  # (images, nodes)
    a, b, x = toy.a.numpy(), toy.b.numpy(), toy.images.numpy()
    s = 1.0 / (1.0 + np.exp(-(a[None, None, :] * z[:, :, None] + b[None, None, :])))  # (images, nodes, dim)
    d1 = (a * (x[:, None, :] - s)).sum(-1) - z
    d2 = -(a**2 * s * (1 - s)).sum(-1) - 1.0
    return (d1 * weights).sum(-1), sigma**2 * (d2 * weights).sum(-1) + 1.0


def check_gaussian_optimum(toy: ToyJoint, atol: float = 1e-6, optimal: bool = True) -> None:
    """Chapter 2: is each Gaussian ``p(z|x) = N(mu, sigma^2)`` of ``toy`` the best Gaussian for the exact
    posterior? Compares both :func:`gaussian_optimum_residuals` with 0 to ``atol``.
    :meth:`ToyJoint.fit_encoder` stops at gradients of ~5e-8, which leave residuals of ~1e-7; hence
    ``atol = 1e-6``. With ``optimal=False`` the claim is the opposite (a table that is *not* the
    optimum, e.g. the random one): it raises if every residual is within ``atol``."""
    import numpy as np

    from tutorlib.checks import IdentityError, compare

    first, second = gaussian_optimum_residuals(toy)
    atol = positive_float("atol", atol)
    if optimal:
        compare("E_p[d/dz ln q(z|x)] = 0 for every image (the best Gaussian's mean)", first, np.zeros_like(first),
                atol=atol, names=("Gauss-Hermite", "0"))
        compare("sigma^2 E_p[d^2/dz^2 ln q(z|x)] + 1 = 0 for every image (its variance)", second,
                np.zeros_like(second), atol=atol, names=("Gauss-Hermite", "0"))
        return
    worst = float(max(np.abs(first).max(), np.abs(second).max()))
    ok = worst > atol
    print(f"{'✓' if ok else '✗'} this encoder is not the best Gaussian: largest |E_p[d/dz ln q(z|x)]| = "
          f"{np.abs(first).max():.3g}, largest |sigma^2 E_p[d^2/dz^2 ln q(z|x)] + 1| = {np.abs(second).max():.3g} "
          f"(both 0 at the optimum; tol {atol:.3g})")
    if not ok:
        raise IdentityError(f"every residual is within {atol:.3g} (largest {worst:.3g}): this encoder already is "
                            "the best Gaussian")


def sigma_sweep(x_train: torch.Tensor, x_show: torch.Tensor, sigma2s: Sequence[float], steps: int, z_dim: int = 16,
                hidden: int = 256, seed: int = 0, x_eval: torch.Tensor | None = None, eval_draws: int = 10) -> dict:
    """Chapter 2's experiment: one Gaussian-decoder VAE per fixed decoder variance ``sigma^2``.

    Returns ``{sigma2: {...}}`` with ``"model"``, the reconstructions (at the encoder mean) of
    ``x_show`` (``"recon"``), 16 samples from the prior (``"samples"``), and on ``x_eval`` (default
    ``x_show``), per image: ``"mse"`` (squared error of the reconstruction at the encoder mean),
    ``"sq_err"`` (``||x - mu(z)||^2`` at ``eval_draws`` encoder samples ``z``, as in the loss), the two
    loss terms ``"rec"`` (``E_z[-ln q(x|z)]``, nats) and ``"kl"``, their sum ``"loss"``, and
    ``"ml_sigma2"`` = ``sq_err / D``, the maximum-likelihood decoder variance for that model,
    ``"loss_at_ml"``, the loss the same networks would have with the decoder variance set to
    ``ml_sigma2`` (``D/2 (1 + ln(2 pi ml_sigma2)) + kl``), and ``"dim"`` = ``D``. The 16 prior draws
    behind ``"samples"`` come from a generator seeded with ``seed``: the same ``z`` for every ``sigma^2``.
    """
    from tutorlib.divergences import kl_normal_std

    x_eval = x_show if x_eval is None else x_eval
    eval_draws = positive_int("eval_draws", eval_draws)
    results = {}
    for s2 in sigma2s:
        s2 = positive_float("sigma2", s2)
        torch.manual_seed(seed)
        model = VAE(x_train.shape[1], z_dim, hidden=hidden, likelihood="gaussian", sigma=math.sqrt(s2))
        fit(model, x_train, steps, binarize=None, seed=seed, desc=f"sigma^2={s2}")
        model.eval()
        with torch.no_grad():
            mu, logvar = model.encode(x_show)
            recon = model.mean(mu)
            ref = next(model.parameters())
            z_prior = torch.randn(16, z_dim, generator=torch.Generator().manual_seed(seed + 1), dtype=ref.dtype)
            samples = model.mean(z_prior.to(ref.device))
            mu_e, logvar_e = model.encode(x_eval)
            g = torch.Generator().manual_seed(seed)
            u = torch.randn((eval_draws, *mu_e.shape), generator=g).to(mu_e.device)
            z = model.reparameterize(mu_e, logvar_e, k=eval_draws, u=u)
            sq_err = float(((x_eval - model.mean(z)) ** 2).sum(-1).mean())
            rec = float(model.nll(x_eval, z).mean())
            kl = float(kl_normal_std(mu_e, logvar_e).mean())
            results[s2] = {"model": model, "recon": recon.clamp(0, 1), "samples": samples.clamp(0, 1),
                           "mse": float(((model.mean(mu_e) - x_eval) ** 2).sum(-1).mean()), "sq_err": sq_err,
                           "rec": rec, "kl": kl, "loss": rec + kl, "ml_sigma2": sq_err / x_eval.shape[1],
                           "dim": x_eval.shape[1]}
            d = x_eval.shape[1]
            results[s2]["loss_at_ml"] = 0.5 * d * (1 + math.log(2 * math.pi * sq_err / d)) + kl
    return results


def check_kl_falls(results: dict) -> None:
    """Chapter 2: in a :func:`sigma_sweep`, the KL term must fall strictly as ``sigma^2`` grows (a larger
    ``sigma^2`` makes squared error cheaper relative to a nat of KL). Raises
    :class:`tutorlib.IdentityError` at the first pair that does not; prints the sequence."""
    from tutorlib.checks import IdentityError

    if not isinstance(results, dict) or len(results) < 2:
        raise ValueError("results must be a sigma_sweep dict with at least two sigma^2 values")
    s2s = sorted(results)
    kls = [float(results[v]["kl"]) for v in s2s]
    bad = [(u, v) for u, v, ku, kv in zip(s2s, s2s[1:], kls, kls[1:]) if not ku > kv]
    print(f"{'✓' if not bad else '✗'} the KL term falls as sigma^2 grows: "
          + " > ".join(f"{k:.2f}" for k in kls) + f" nats at sigma^2 = {', '.join(map(str, s2s))}")
    if bad:
        raise IdentityError(f"the KL term does not fall from sigma^2 = {bad[0][0]} to {bad[0][1]}")


def check_ml_sigma2(nll_of_sigma2: Callable[[float], float], per_pixel_sq_err: float) -> float:
    """Chapter 2: the maximum-likelihood decoder variance is the per-pixel squared error. Minimises
    ``nll_of_sigma2`` (the mean Gaussian ``-ln q(x|z)`` of fixed reconstructions as a function of
    ``sigma^2``) numerically over ``ln sigma^2`` and compares the minimiser with ``per_pixel_sq_err``
    (``rtol = 1e-6``: the optimiser is run to ``1e-9`` in ``ln sigma^2``). Returns the minimiser."""
    from scipy import optimize

    from tutorlib.checks import compare

    if not callable(nll_of_sigma2):
        raise ValueError("nll_of_sigma2 must be a callable sigma2 -> mean negative log-likelihood")
    target = positive_float("per_pixel_sq_err", per_pixel_sq_err)
    res = optimize.minimize_scalar(lambda t: float(nll_of_sigma2(math.exp(t))), bounds=(-15.0, 5.0),
                                   method="bounded", options={"xatol": 1e-9})
    best = math.exp(res.x)
    compare("maximum-likelihood sigma^2 = per-pixel squared error", best, target, rtol=1e-6,
            names=("argmin of the Gaussian NLL", "||x - mu(z)||^2 / D"))
    return best


def check_sigma2_consistent(results: dict) -> float:
    """Chapter 2: in a :func:`sigma_sweep`, the ``sigma^2`` with the lowest loss ``L`` (nats; comparable
    across ``sigma^2`` because each is the same bound on ``-ln q(x)``) must be the one closest, in
    ``|ln(sigma^2 / ml_sigma2)|``, to the maximum-likelihood variance of its own model. Raises
    :class:`tutorlib.IdentityError` otherwise; prints both and returns the best ``sigma^2``."""
    from tutorlib.checks import IdentityError

    if not isinstance(results, dict) or len(results) < 2:
        raise ValueError("results must be a sigma_sweep dict with at least two sigma^2 values")
    best = min(results, key=lambda v: results[v]["loss"])
    nearest = min(results, key=lambda v: abs(math.log(v / results[v]["ml_sigma2"])))
    ok = best == nearest
    print(f"{'✓' if ok else '✗'} the lowest loss is where sigma^2 is closest to its own maximum-likelihood value\n"
          f"    lowest L: sigma^2 = {best} (L = {results[best]['loss']:.1f}) | closest to ML: sigma^2 = {nearest} "
          f"(ML sigma^2 = {results[nearest]['ml_sigma2']:.4f})")
    if not ok:
        raise IdentityError(f"the lowest loss is at sigma^2 = {best}, but sigma^2 = {nearest} is closest to its "
                            f"maximum-likelihood value")
    return best


@torch.no_grad()
def prior_sampling_estimate(model: VAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                            chunk: int = 2000) -> torch.Tensor:
    """``-ln (1/k) sum_j q(x|z_j)`` per image with ``k`` prior codes ``z_j ~ N(0, I)`` shared by all of
    ``x``: the prior-sampling estimate of ``-ln q(x)`` (nats). Its expectation is an upper bound on
    ``-ln q(x)`` (Jensen), tight only when ``k`` prior draws cover the codes that explain ``x``.
    Computed in chunks of ``chunk`` codes so memory stays bounded."""
    k, chunk = positive_int("k", k), positive_int("chunk", chunk)
    model._check_x(x)
    parts = []
    for start in range(0, k, chunk):
        z = torch.randn(min(chunk, k - start), model.z_dim, generator=generator, device=x.device, dtype=x.dtype)
        parts.append(torch.logsumexp(pairwise_log_likelihood(model, x, z), dim=0))
    return -(torch.logsumexp(torch.stack(parts), dim=0) - math.log(k))


@torch.no_grad()
def prior_battles(model: VAE, x: torch.Tensor, k: int, batches: int, generator: torch.Generator | None = None) -> dict:
    """Su's "resource war" over several batches: the same images ``x`` meet ``batches`` fresh sets of
    ``k`` prior codes, as in successive training steps. Returns

    - ``"decoded"`` (batches, k, x_dim): what each batch's codes decode to (decoder means);
    - ``"winner"`` (batches, n): for each image, the index of the code that explains it best;
    - ``"wins"`` (batches, k): how many images each code wins;
    - ``"loss"`` (batches, n): each image's prior-sampling loss ``-ln (1/k) sum_j q(x|z_j)`` in that batch.
    """
    k, batches = positive_int("k", k), positive_int("batches", batches)
    model._check_x(x)
    decoded, winner, wins, loss = [], [], [], []
    for _ in range(batches):
        z = torch.randn(k, model.z_dim, generator=generator, device=x.device, dtype=x.dtype)
        log_lik = pairwise_log_likelihood(model, x, z)  # (k, n)
        best = log_lik.argmax(dim=0)
        decoded.append(model.mean(z))
        winner.append(best)
        wins.append(torch.bincount(best, minlength=k))
        loss.append(-(torch.logsumexp(log_lik, dim=0) - math.log(k)))
    return {"decoded": torch.stack(decoded), "winner": torch.stack(winner), "wins": torch.stack(wins),
            "loss": torch.stack(loss)}


def prior_sampling_sweep(x_train: torch.Tensor, ks: Sequence[int], steps: int, z_dim: int = 16, hidden=256,
                         batch_size: int = 100, lr: float = 1e-3, seed: int = 0, x_test: torch.Tensor | None = None,
                         eval_k: int = 10_000, battles: int = 6, n_battle: int = 100) -> dict:
    """Chapter 3's "fight over z": one decoder per ``k`` (a :class:`VAE` whose encoder is never used),
    trained from the same initialisation and on the same batches with the prior-sampling objective
    (``k`` prior samples shared by each batch of dynamically binarised images). Returns
    ``{k: {"model", "history", "samples", "train_loss", "battles", "battle_images", "test_nll"}}``:

    - ``"train_loss"``: the objective on the training batches, averaged over the last tenth of the steps;
    - ``"battles"``: :func:`prior_battles` of the first ``n_battle`` training images (one fixed binarisation)
      against ``battles`` fresh sets of ``k`` codes;
    - ``"test_nll"``: with ``x_test`` (binary), the mean :func:`prior_sampling_estimate` with ``eval_k``
      shared codes, an estimate of the decoder's test NLL per image (nats); else ``None``.
    """
    from tutorlib.data import binarize

    steps, n_battle = positive_int("steps", steps), positive_int("n_battle", n_battle)
    results = {}
    x_battle = binarize(x_train[:n_battle], "dynamic", generator=torch.Generator().manual_seed(seed))
    for k in ks:
        k = positive_int("k", k)
        torch.manual_seed(seed)
        model = VAE(x_train.shape[1], z_dim, hidden=hidden)
        hist = fit(model, x_train, steps, objective="prior", k=k, batch_size=batch_size, lr=lr, seed=seed,
                   desc=f"prior sampling k={k}")
        model.eval()
        gen = torch.Generator().manual_seed(seed + 1)
        tail = max(1, len(hist) // 10)
        results[k] = {"model": model, "history": hist, "samples": model.sample(16), "battle_images": x_battle,
                      "train_loss": float(hist["loss"][-tail:].mean()),
                      "battles": prior_battles(model, x_battle, k, battles, generator=gen),
                      "test_nll": None if x_test is None else
                      float(prior_sampling_estimate(model, x_test, eval_k, generator=gen).mean())}
    return results


# --- chapter 3: checks on a trained VAE ----------------------------------------------------------------

def check_sampled_kl(model: VAE, x: torch.Tensor, draws: int = 400, seed: int = 0, n_se: float = 4.0) -> dict:
    """Su's one-sample KL ``ln p(z|x) - ln q(z)``, ``z ~ p(z|x)``, is unbiased: averaged over ``draws``
    draws per image and over the images ``x`` it must match the closed form, written independently
    with ``torch.distributions.kl_divergence``, to within ``n_se`` standard errors (computed from the
    draws). Returns the per-image closed form and the sd of one draw around it (nats)."""
    from torch.distributions import Independent, Normal, kl_divergence

    from tutorlib.checks import compare

    draws = positive_int("draws", draws, minimum=2)
    torch.manual_seed(positive_int("seed", seed, minimum=0))
    with torch.no_grad():
        n = model._check_x(x).shape[0]
        sampled = model.loss_terms(x.repeat(draws, 1), kl="sampled")["kl"].view(draws, n).double()
        h = model.encoder(x).double()
        mu, logvar = h[:, : model.z_dim], h[:, model.z_dim:]
        exact = kl_divergence(Independent(Normal(mu, torch.exp(logvar / 2)), 1),
                              Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1))
    se = float(torch.sqrt((sampled.var(0) / draws).sum()) / n)
    compare(f"one-sample KL, averaged ({n} images x {draws} draws; tolerance {n_se:g} SE)",
            float(sampled.mean()), float(exact.mean()), atol=n_se * se,
            names=("mean of ln p(z|x) - ln q(z)", "torch.distributions kl_divergence"))
    return {"exact": exact, "sd": (sampled - exact).std(0)}


@torch.no_grad()
def posterior_width(model: VAE, x: torch.Tensor) -> dict:
    """How narrow the encoder's posterior is, per latent dimension, on the images ``x``: ``"sigma"`` the
    median over images of ``sigma_d(x)``, ``"spread"`` the standard deviation over images of the codes
    ``mu_d(x)``, ``"ratio"`` their quotient (how many posterior widths the codes of different images
    spread over, inverted), and ``"active"``: Burda et al.'s active units, ``Var_x[mu_d(x)] > 0.01``."""
    mu, logvar = model.encode(model._check_x(x))
    sigma = (0.5 * logvar).exp()
    spread = mu.std(0)
    med = sigma.median(0).values
    return {"sigma": med, "spread": spread, "ratio": med / spread, "active": mu.var(0) > 0.01, "mu": mu,
            "logvar": logvar}


@torch.no_grad()
def one_sample_spread(model: VAE, x: torch.Tensor, draws: int = 16, seed: int = 0) -> dict:
    """What one posterior sample changes, in the space where it matters, the decoded images:

    - ``"within"``: the pixel variance of the decoded means of ``draws`` samples ``z ~ p(z|x)`` of one image,
      summed over pixels and averaged over the images ``x``;
    - ``"between"``: the pixel variance, across the images, of the decoded means at their codes ``mu(x)``,
      summed over pixels;
    - ``"ratio"``: ``sqrt(within / between)``, the typical change one sample makes relative to the typical
      difference between two images' decodings (root mean square);
    - ``"control"``: the same ratio for posteriors as wide as the prior, ``z = mu(x) + u`` (sigma = 1 around the
      same codes): the yardstick for "narrow" (what one sample would change if the posterior were not narrow);
    - ``"identified"``: how often the code explains its own image best among ``x`` (``argmax_j q(x_j|z)``),
      for ``"mean"`` (z = mu(x)), ``"sample"`` (one z ~ p(z|x)) and ``"prior"`` (z ~ q(z), a random code;
      chance is ``1 / len(x)``).
    """
    draws = positive_int("draws", draws, minimum=2)
    g = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    mu, logvar = model.encode(model._check_x(x))
    u = torch.randn((draws, *mu.shape), generator=g, dtype=mu.dtype).to(mu.device)
    within = float(model.mean(model.reparameterize(mu, logvar, draws, u=u)).var(0).sum(-1).mean())
    between = float(model.mean(mu).var(0).sum())
    wide = float(model.mean(mu + u).var(0).sum(-1).mean())  # the same noise, sigma = 1: a prior-wide posterior
    own = torch.arange(x.shape[0], device=x.device)

    def identified(z):
        return float((pairwise_log_likelihood(model, x, z).argmax(1) == own).double().mean())

    return {"within": within, "between": between, "ratio": math.sqrt(within / between),
            "control": math.sqrt(wide / between),
            "identified": {"mean": identified(mu), "sample": identified(model.reparameterize(mu, logvar, u=u[0])),
                           "prior": identified(torch.randn(mu.shape, generator=g, dtype=mu.dtype).to(mu.device))}}


def check_one_sample_enough(spread: dict, max_ratio: float) -> None:
    """Su: every sample of the narrow posterior is almost the same, so one sample stands for many. The
    check: one posterior sample moves the decoded image by less than ``max_ratio`` of the typical
    difference between two images (``spread["ratio"]`` from :func:`one_sample_spread`). Where ``spread``
    holds the prior-wide ``"control"``, the threshold must separate the two: a control at or below
    ``max_ratio`` means the check could not tell a narrow posterior from a prior-wide one, and it raises.
    Raises :class:`tutorlib.IdentityError` otherwise (as for an encoder that is still the prior)."""
    from tutorlib.checks import IdentityError

    max_ratio = positive_float("max_ratio", max_ratio)
    ratio = float(spread["ratio"])
    control = spread.get("control")
    if control is not None and not float(control) > max_ratio:
        raise IdentityError(f"the threshold {max_ratio:.3g} does not separate a narrow posterior from a prior-wide one "
                            f"(whose ratio is {float(control):.3f}): the check is too weak to fail")
    ok = ratio < max_ratio
    versus = "" if control is None else f"; a prior-wide posterior: {float(control):.3f}"
    print(f"{'✓' if ok else '✗'} one posterior sample moves the decoded image by {ratio:.3f} of the typical "
          f"difference between images (rms); claim: below {max_ratio:.3g}{versus}")
    if not ok:
        raise IdentityError(f"one posterior sample moves the decoded image by {ratio:.3f} of the difference between "
                            f"images, not below {max_ratio:.3g}: its samples are not almost the same")


# --- chapter 3: the seed-to-seed spread of its quick-mode numbers --------------------------------------

#: Written from ``benchmarks/ch03_seed_spread.json`` (``benchmarks/ch03_seed_spread.py``; a test keeps the
#: two equal): the configuration and each seed's value of each quantity (:func:`seed_spread` summarises them).
#: Like :data:`BURDA_PAPER_NLL`, a record of numbers kept in the library so that a chapter opened on Colab
#: (which installs ``src/`` only) can read it.
SEED_SPREAD: dict = {
    "config": {"z_dim": 20, "hidden": 200, "lr": 0.003, "batch_size": 100, "steps": 800, "iwae_k": 5, "n_test": 500, "n_curve": 100, "curve_k": 1000, "test_reps": 10},
    "seeds": [0, 1, 2, 3, 4, 5], "commit": "d61f914", "machine": "x86_64 2 cores, torch 2.13.0+cpu, 1 thread",
    "per_seed": {
        "test_loss_analytic": [119.1484, 119.7077, 119.5775, 120.0946, 119.5791, 120.7566],
        "test_loss_sampled": [119.7338, 120.6273, 119.4606, 120.3409, 120.4792, 121.0537],
        "test_loss_difference": [0.5855, 0.9196, -0.1169, 0.2463, 0.9, 0.2971],
        "vae_L1": [-124.9717, -125.8648, -124.4795, -125.7858, -126.252, -126.343],
        "vae_best": [-117.6571, -118.1926, -117.4934, -118.7344, -119.1018, -119.1321],
        "vae_gap": [7.3146, 7.6722, 6.9861, 7.0514, 7.1502, 7.2109],
        "iwae_L1": [-128.6102, -126.9849, -127.0589, -129.3348, -128.2431, -127.8578],
        "iwae_best": [-116.2476, -116.1705, -116.5712, -117.7515, -116.9434, -117.0421],
        "iwae_gap": [12.3627, 10.8144, 10.4877, 11.5833, 11.2997, 10.8158],
        "plateau_difference": [1.4095, 2.0221, 0.9222, 0.9829, 2.1584, 2.09],
        "gap_difference": [5.048, 3.1422, 3.5016, 4.5319, 4.1495, 3.6049],
    },
}


def seed_spread(config: dict, exclude_seed: int | None = None) -> dict:
    """The measured seed-to-seed spread of chapter 3's numbers for the configuration ``config`` (the
    chapter's model size, learning rate, steps...): ``{quantity: {"mean", "sd", "n"}}`` over the recorded
    seeds, leaving out ``exclude_seed`` if it is one of them (the chapter's own seed: its run is then
    judged against the *other* seeds, not against a mean that includes it). Raises ``ValueError`` if the
    recorded measurement was made with another configuration (re-run ``benchmarks/ch03_seed_spread.py``
    after changing it)."""
    import statistics

    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    recorded = SEED_SPREAD["config"]
    differ = {k: (config[k], recorded.get(k)) for k in config if recorded.get(k) != config[k]}
    if differ:
        raise ValueError(f"config differs from the one the seed spread was measured with: {differ} "
                         f"(given, recorded); re-run benchmarks/ch03_seed_spread.py")
    keep = [i for i, s in enumerate(SEED_SPREAD["seeds"]) if s != exclude_seed]
    out = {}
    for key, values in SEED_SPREAD["per_seed"].items():
        v = [values[i] for i in keep]
        out[key] = {"mean": statistics.fmean(v), "sd": statistics.stdev(v), "n": len(v)}
    return out


def check_trained_alike(name_a: str, loss_a: float, name_b: str, loss_b: float, sd: float, n_sd: float = 3.0) -> None:
    """Two models that differ only in their objective "train to the same place" when their test losses
    differ by no more than ``n_sd`` times ``sd``, the measured seed-to-seed standard deviation of that
    difference (from :func:`seed_spread`)."""
    from tutorlib.checks import compare

    sd = positive_float("sd", sd)
    compare(f"test loss after training ({n_sd:g} x the seed-to-seed sd {sd:.3f} of the difference)",
            float(loss_a), float(loss_b), atol=n_sd * sd, names=(name_a, name_b))
