"""The VAE of chapters 2-4, in Su's notation: encoder p(z|x), prior q(z) = N(0, I), decoder q(x|z).

:class:`VAE` holds a Gaussian encoder and a Bernoulli or Gaussian decoder, and computes

- the loss of chapter 2 (Su's article 1, section 3): ``E_{z~p(z|x)}[-ln q(x|z)] + KL(p(z|x) || q(z))``
  with the analytic KL and one reparameterised sample (``kl="analytic"``), or with the KL term
  sampled at the same point too (``kl="sampled"``, article 2, section 2);
- the prior-sampling objective ``-ln (1/k) sum_j q(x|z_j)``, ``z_j ~ q(z)`` shared by the batch
  (the "fight over z" of article 2, section 3);
- the IWAE bound ``L_k = E[ln (1/k) sum_i q(x|z_i) q(z_i) / p(z_i|x)]``, ``z_i ~ p(z|x)`` (Burda et al.).

:func:`pathwise_gradients` and :func:`score_function_gradients` are the two estimators of the gradient
of ``E_{z~N(mu, e^logvar)}[f(z)]`` that chapter 4 compares.
"""

from __future__ import annotations

import math
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

def _check_gaussian(mu, logvar, n):
    if not isinstance(mu, torch.Tensor) or not isinstance(logvar, torch.Tensor) or mu.dim() != 1 or mu.shape != logvar.shape:
        raise ValueError("mu and logvar must be 1-D tensors of the same shape")
    return positive_int("n", n)


def pathwise_gradients(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, logvar: torch.Tensor, n: int,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` single-sample pathwise (reparameterisation) estimates of the gradient of
    ``E_{z~N(mu, e^logvar)}[f(z)]`` w.r.t. ``(mu, logvar)``: ``z = mu + sigma u`` and
    ``d f(z) / d(mu, logvar) = (f'(z), f'(z) * sigma * u / 2)``. Returns shape (n, 2 * dim).
    ``f`` maps (n, dim) to (n,) row by row."""
    n = _check_gaussian(mu, logvar, n)
    u = torch.randn(n, mu.shape[0], generator=generator, dtype=mu.dtype)
    sigma = (0.5 * logvar.detach()).exp()
    z = (mu.detach() + sigma * u).requires_grad_(True)
    (df_dz,) = torch.autograd.grad(f(z).sum(), z)  # row i depends only on z_i, so this is per-sample
    return torch.cat([df_dz, df_dz * sigma * u / 2], dim=1)


def score_function_gradients(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, logvar: torch.Tensor,
                             n: int, generator: torch.Generator | None = None, baseline: float = 0.0) -> torch.Tensor:
    """``n`` single-sample score-function (REINFORCE) estimates of the same gradient:
    ``(f(z) - b) * d ln N(z; mu, e^logvar) / d(mu, logvar)`` with ``z ~ N(mu, e^logvar)`` (no
    gradient through z) and an optional constant baseline ``b``. Returns shape (n, 2 * dim)."""
    n = _check_gaussian(mu, logvar, n)
    u = torch.randn(n, mu.shape[0], generator=generator, dtype=mu.dtype)
    sigma = (0.5 * logvar.detach()).exp()
    z = mu.detach() + sigma * u
    with torch.no_grad():
        fz = f(z) - float(baseline)
    score_mu = u / sigma  # (z - mu) / sigma^2
    score_logvar = 0.5 * (u**2 - 1)  # (z - mu)^2 / (2 sigma^2) - 1/2
    return fz[:, None] * torch.cat([score_mu, score_logvar], dim=1)


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
        checkpoint=None, log_every: int = 10, desc: str | None = None):
    """Train ``model`` on ``x_train`` (intensities in [0, 1]) with :func:`tutorlib.train.train`.

    ``objective``: ``"elbo"`` (analytic KL), ``"elbo-sampled"`` (KL sampled too), ``"iwae"``
    (maximise ``L_k``) or ``"prior"`` (the prior-sampling objective with ``k`` shared prior samples).
    ``binarize``: ``"dynamic"`` (a fresh Bernoulli draw of every batch, as Burda et al.),
    ``"threshold"`` (fixed, pixel > 0.5) or None (use ``x_train`` as it is, e.g. for a Gaussian decoder).
    Returns the :class:`tutorlib.train.History` (``loss``, and ``rec``/``kl`` for the ELBO objectives).
    """
    from tutorlib.data import binarize as binarize_fn
    from tutorlib.train import Batches, train

    one_of("objective", objective, OBJECTIVES)
    if binarize is not None:
        one_of("binarize", binarize, ("dynamic", "threshold"))
    k = positive_int("k", k)
    x_fixed = binarize_fn(x_train, "threshold") if binarize == "threshold" else x_train
    batches = Batches(x_fixed, batch_size=min(positive_int("batch_size", batch_size), len(x_fixed)), seed=seed)

    def loss_fn(x):
        if binarize == "dynamic":
            x = _bernoulli(x)
        if objective in ("elbo", "elbo-sampled"):
            return model.loss(x, kl="analytic" if objective == "elbo" else "sampled", beta=beta)
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
    - ``"identified"``: how often the code explains its own image best among ``x`` (``argmax_j q(x_j|z)``),
      for ``"mean"`` (z = mu(x)), ``"sample"`` (one z ~ p(z|x)) and ``"prior"`` (z ~ q(z), a random code).
    """
    draws = positive_int("draws", draws, minimum=2)
    g = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    mu, logvar = model.encode(model._check_x(x))
    u = torch.randn((draws, *mu.shape), generator=g, dtype=mu.dtype).to(mu.device)
    within = float(model.mean(model.reparameterize(mu, logvar, draws, u=u)).var(0).sum(-1).mean())
    between = float(model.mean(mu).var(0).sum())
    own = torch.arange(x.shape[0], device=x.device)

    def identified(z):
        return float((pairwise_log_likelihood(model, x, z).argmax(1) == own).double().mean())

    return {"within": within, "between": between, "ratio": math.sqrt(within / between),
            "identified": {"mean": identified(mu), "sample": identified(model.reparameterize(mu, logvar, u=u[0])),
                           "prior": identified(torch.randn(mu.shape, generator=g, dtype=mu.dtype).to(mu.device))}}


def check_one_sample_enough(spread: dict, max_ratio: float) -> None:
    """Su: every sample of the narrow posterior is almost the same, so one sample stands for many. The
    check: one posterior sample moves the decoded image by less than ``max_ratio`` of the typical
    difference between two images (``spread["ratio"]`` from :func:`one_sample_spread`). Raises
    :class:`tutorlib.IdentityError` otherwise (as for an encoder that is still the prior)."""
    from tutorlib.checks import IdentityError

    max_ratio = positive_float("max_ratio", max_ratio)
    ratio = float(spread["ratio"])
    ok = ratio < max_ratio
    print(f"{'✓' if ok else '✗'} one posterior sample moves the decoded image by {ratio:.3f} of the typical "
          f"difference between images (rms); claim: below {max_ratio:.3g}")
    if not ok:
        raise IdentityError(f"one posterior sample moves the decoded image by {ratio:.3f} of the difference between "
                            f"images, not below {max_ratio:.3g}: its samples are not almost the same")
