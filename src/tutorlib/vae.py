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
:func:`gradient_noise` test Su's remark that more than one draw of z per image changes little.
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

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """``ln q(x|z_i) + ln q(z_i) - ln p(z_i|x)`` for ``k`` draws ``z_i ~ p(z|x)``: shape (k, batch)."""
        k = positive_int("k", k)
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, k)
        zero = torch.zeros_like(z)
        return -self.nll(x, z) + gaussian_log_prob(z, zero, zero) - gaussian_log_prob(z, mu, logvar)

    def iwae_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The IWAE bound ``L_k`` per example: ``ln (1/k) sum_i w_i`` with ``w_i = q(x, z_i) / p(z_i|x)``
        (log-sum-exp, numerically stable). ``k = 1`` is the all-sampled ELBO of article 2, section 2."""
        lw = self.log_weights(x, k)
        return torch.logsumexp(lw, dim=0) - math.log(lw.shape[0])

    def prior_sampling_loss(self, x: torch.Tensor, k: int, return_assignment: bool = False):
        """``-mean_x ln (1/k) sum_j q(x|z_j)`` with ``k`` prior samples ``z_j ~ N(0, I)`` shared by the
        whole batch: the x's compete for the few z's. With ``return_assignment`` also returns, for
        each x, the index of the z_j that explains it best."""
        k = positive_int("k", k)
        self._check_x(x)
        z = torch.randn(k, 1, self.z_dim, device=x.device, dtype=x.dtype)
        log_lik = -self.nll(x, z)  # (k, batch)
        loss = -(torch.logsumexp(log_lik, dim=0) - math.log(k)).mean()
        if return_assignment:
            return loss, log_lik.argmax(dim=0), z[:, 0]
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


def gradient_noise(model: VAE, x_train: torch.Tensor, samples: int = 1, batch_size: int = 100, reps: int = 20,
                   seed: int = 0) -> dict[str, float]:
    """Where the noise of a training step's gradient comes from, at the model's current weights.

    The gradient of :func:`multi_sample_loss` (``samples`` draws of z per image) w.r.t. all
    parameters is computed ``reps`` times on one fixed, binarised batch with fresh draws of z
    (``"z"``: the variance due to sampling z alone), and ``reps`` times on fresh batches with fresh
    dynamic binarisation and fresh z (``"total"``: the noise a training step has). Each is the
    trace of the covariance (the summed variance over parameters), with ``"signal"`` the squared
    norm of the mean gradient over the fresh batches."""
    samples, batch_size = positive_int("samples", samples), positive_int("batch_size", batch_size)
    reps = positive_int("reps", reps, minimum=2)
    if not isinstance(x_train, torch.Tensor) or x_train.dim() != 2 or len(x_train) < batch_size:
        raise ValueError(f"x_train must be an (n, {model.x_dim}) tensor with n >= batch_size = {batch_size}")
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    state = torch.get_rng_state()
    torch.manual_seed(seed)  # the draws of z inside the loss

    def grad(xb):
        loss = multi_sample_loss(model, xb, samples)["loss"]
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    try:
        fixed = torch.bernoulli(x_train[torch.randperm(len(x_train), generator=gen)[:batch_size]], generator=gen)
        g_z = torch.stack([grad(fixed) for _ in range(reps)])
        g_all = torch.stack([grad(torch.bernoulli(x_train[torch.randperm(len(x_train), generator=gen)[:batch_size]],
                                                  generator=gen)) for _ in range(reps)])
    finally:
        torch.set_rng_state(state)
    return {"z": float(g_z.var(0).sum()), "total": float(g_all.var(0).sum()), "signal": float(g_all.mean(0).pow(2).sum())}


# --- training -------------------------------------------------------------------------------------

OBJECTIVES = ("elbo", "elbo-sampled", "iwae", "prior")


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
            x = torch.bernoulli(x)
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


def burda_experiment(objective: str, k: int, epochs: int | None = None, z_dim: int = 50, hidden=(200, 200),
                     eval_k: int = 5000, n_test: int | None = None, source: str = "auto", checkpoint_dir=None,
                     seed: int = 0) -> dict:
    """Burda et al.'s one-stochastic-layer MNIST experiment: a VAE (``objective="elbo"``, trained on
    the all-sampled ELBO) or an IWAE (``"iwae"``) with ``k`` samples, 784-200-200-50 tanh networks,
    dynamically binarised data, Adam; then the test NLL estimated with ``eval_k`` importance samples
    (nats; lower is better). Checkpointed in ``checkpoint_dir`` so an interrupted run resumes.

    Burda et al. train for 3,280 passes with a decaying learning rate; ``epochs`` defaults to 100 in
    full mode (where the GPU budget is 30 minutes per model) and 1 in quick mode.
    """
    import time
    from pathlib import Path

    from tutorlib.data import binarize as binarize_fn
    from tutorlib.data import mnist
    from tutorlib.runtime import device as best_device
    from tutorlib.runtime import run_mode

    one_of("objective", objective, ("elbo", "iwae"))
    k = positive_int("k", k)
    epochs = positive_int("epochs", epochs if epochs is not None else (100 if run_mode() == "full" else 1))
    dev = best_device()
    torch.manual_seed(positive_int("seed", seed, minimum=0))
    start = time.perf_counter()
    train_set, test_set = mnist("train", source=source), mnist("test", source=source)
    x_train, x_test = train_set.x.to(dev), test_set.x.to(dev)
    if n_test is not None:
        x_test = x_test[:positive_int("n_test", n_test)]
    model = VAE(784, z_dim, hidden=hidden, activation="tanh").to(dev)
    steps = epochs * (len(x_train) // 100)
    name = f"burda_{objective}_k{k}_z{z_dim}_e{epochs}.pt"
    ckpt = Path(checkpoint_dir) / name if checkpoint_dir is not None else None
    history = fit(model, x_train, steps, objective="iwae" if objective == "iwae" else "elbo-sampled", k=k,
                  batch_size=100, binarize="dynamic", seed=seed, checkpoint=ckpt, desc=f"{objective} k={k}")
    model.eval()
    from tutorlib.metrics import iwae_nll

    x_eval = binarize_fn(x_test, "dynamic", generator=torch.Generator(device=x_test.device).manual_seed(seed))
    nll = float(iwae_nll(model, x_eval, k=eval_k).mean())
    return {"objective": objective, "k": k, "epochs": epochs, "test_nll": nll, "eval_k": eval_k,
            "binarization": "dynamic (test set: one fixed Bernoulli draw)", "seconds": time.perf_counter() - start,
            "history": history, "source": train_set.source}


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
        self.mu = torch.randn(n, generator=g, dtype=torch.float64)
        self.logvar = torch.randn(n, generator=g, dtype=torch.float64) * 0.5 - 1.0
        self.a = torch.randn(self.dim, generator=g, dtype=torch.float64) * 2
        self.b = torch.randn(self.dim, generator=g, dtype=torch.float64)
        self.z = torch.linspace(-z_max, z_max, positive_int("grid", grid, minimum=3), dtype=torch.float64)
        self.dz = float(self.z[1] - self.z[0])

    def log_decoder(self) -> torch.Tensor:
        """``ln q(x|z)`` on (images, grid)."""
        logits = self.a[None, :, None] * self.z[None, None, :] + self.b[None, :, None]  # (1, dim, grid)
        x = self.images[:, :, None]
        return -F.binary_cross_entropy_with_logits(logits.expand(len(x), -1, -1), x.expand(-1, -1, len(self.z)),
                                                   reduction="none").sum(1)

    def log_encoder(self) -> torch.Tensor:
        """``ln p(z|x)`` on (images, grid)."""
        return gaussian_log_prob(self.z[None, :, None], self.mu[:, None, None], self.logvar[:, None, None])

    def log_prior(self) -> torch.Tensor:
        return -0.5 * (LOG_2PI + self.z**2)

    def _integrate(self, f: torch.Tensor) -> torch.Tensor:
        return f.sum(-1) * self.dz  # the grid is fine and the integrands vanish at its ends

    def joint_kl(self) -> float:
        """``KL(p(x, z) || q(x, z))`` with ``p(x, z) = p_data(x) p(z|x)`` and ``q(x, z) = q(x|z) q(z)``."""
        le = self.log_encoder()
        inner = self._integrate(le.exp() * (self.p_data.log()[:, None] + le - self.log_decoder() - self.log_prior()))
        return float((self.p_data * inner).sum())

    def loss(self) -> float:
        """Su's loss ``L = E_x[ E_{z~p(z|x)}[-ln q(x|z)] + KL(p(z|x) || q(z)) ]`` (analytic KL)."""
        from tutorlib.divergences import kl_normal_std

        rec = self._integrate(self.log_encoder().exp() * -self.log_decoder())
        kl = kl_normal_std(self.mu[:, None], self.logvar[:, None])
        return float((self.p_data * (rec + kl)).sum())

    def data_log_likelihood(self) -> float:
        """``E_x[ln p_data(x)]`` (minus the data's entropy)."""
        return float((self.p_data * self.p_data.log()).sum())

    def log_marginal(self) -> torch.Tensor:
        """``ln q(x) = ln int q(x|z) q(z) dz`` for every image."""
        return torch.logsumexp(self.log_decoder() + self.log_prior(), dim=-1) + math.log(self.dz)

    def posterior_gap(self) -> float:
        """``E_x[KL(p(z|x) || q(z|x))]`` with the exact posterior ``q(z|x) = q(x|z) q(z) / q(x)``."""
        le = self.log_encoder()
        log_post = self.log_decoder() + self.log_prior() - self.log_marginal()[:, None]
        return float((self.p_data * self._integrate(le.exp() * (le - log_post))).sum())


def sigma_sweep(x_train: torch.Tensor, x_show: torch.Tensor, sigma2s: Sequence[float], steps: int, z_dim: int = 16,
                hidden: int = 256, seed: int = 0) -> dict:
    """Chapter 2's experiment: one Gaussian-decoder VAE per fixed decoder variance ``sigma^2``.

    Returns ``{sigma2: {"model", "recon", "samples", "mse", "kl"}}`` with the reconstructions of
    ``x_show``, 16 samples from the prior, and the mean squared error and KL per image on ``x_show``.
    """
    results = {}
    for s2 in sigma2s:
        s2 = positive_float("sigma2", s2)
        torch.manual_seed(seed)
        model = VAE(x_train.shape[1], z_dim, hidden=hidden, likelihood="gaussian", sigma=math.sqrt(s2))
        fit(model, x_train, steps, binarize=None, seed=seed, desc=f"sigma^2={s2}")
        model.eval()
        with torch.no_grad():
            from tutorlib.divergences import kl_normal_std

            mu, logvar = model.encode(x_show)
            recon = model.mean(mu)
            results[s2] = {"model": model, "recon": recon.clamp(0, 1), "samples": model.sample(16).clamp(0, 1),
                           "mse": float(((recon - x_show) ** 2).sum(-1).mean()),
                           "kl": float(kl_normal_std(mu, logvar).mean())}
    return results


def prior_sampling_sweep(x_train: torch.Tensor, ks: Sequence[int], steps: int, z_dim: int = 16, hidden: int = 256,
                         batch_size: int = 100, seed: int = 0) -> dict:
    """Chapter 3's "fight over z": one decoder per ``k``, trained with the prior-sampling objective
    (``k`` prior samples shared by each batch of binarised images). Returns
    ``{k: {"model", "samples", "assignment", "loss"}}`` where ``assignment`` says, for one batch of
    training images, which of its ``k`` z's explains each image best."""
    from tutorlib.data import binarize

    results = {}
    for k in ks:
        k = positive_int("k", k)
        torch.manual_seed(seed)
        model = VAE(x_train.shape[1], z_dim, hidden=hidden)
        hist = fit(model, x_train, steps, objective="prior", k=k, batch_size=batch_size, seed=seed,
                   desc=f"prior sampling k={k}")
        model.eval()
        with torch.no_grad():
            xb = binarize(x_train[:batch_size], "threshold")
            _, assignment, _ = model.prior_sampling_loss(xb, k, return_assignment=True)
            results[k] = {"model": model, "samples": model.sample(16), "assignment": assignment,
                          "loss": float(hist["loss"][-20:].mean())}
    return results
