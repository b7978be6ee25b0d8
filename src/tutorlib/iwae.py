"""Importance weighting in a VAE (chapter 3; Su's article 2, section 6, and Burda et al.).

In Su's notation the encoder is ``p(z|x)``, the prior ``q(z) = N(0, I)`` and the decoder ``q(x|z)``
(Burda et al. and Kingma & Welling write the reverse: ``q(z|x)`` for the encoder, ``p(x|z)`` for the
decoder). A draw ``z ~ r(z)`` from any *proposal* ``r`` whose support covers the posterior gives the
weight ``w = q(x|z) q(z) / r(z)`` with ``E[w] = q(x)``; the IWAE bound is
``L_k = E[ln (1/k) sum_i w_i]`` with the encoder as the proposal.

Where things live: :class:`tutorlib.vae.VAE` holds the model and its bound (``log_weights``, ``iwae_bound``;
DESIGN's public API), :mod:`tutorlib.metrics` the NLL estimates in the units papers report
(``iwae_nll``, ``log_weight_matrix``), and this module one concept, importance weighting: what one
measures about the weights and what one checks about the bound (chapter 3):

- :func:`normalized_weights`, :func:`effective_sample_size`, :func:`proposal_log_weights`;
- :func:`bound_curve`: every ``L_k`` for ``k`` dividing ``K`` from one set of ``K`` weights;
- :func:`reference_log_weights`: the log weight by an independent computation (``torch.distributions``);
- :func:`check_k1_shared_noise`, :func:`check_k1_expectation`, :func:`check_bound_curve`: the identities;
- :func:`exact_log_marginal_1d`, :func:`check_unbiased_weights`, :func:`check_estimate_higher`: any proposal's
  weights are unbiased; which one concentrates;
- :func:`check_iwae_effects`: Burda et al.'s higher plateau and wider gap, against the seed spread
  (recorded with the VAE experiments it measures: :func:`tutorlib.vae.seed_spread`);
- :func:`gradient_snr`, :func:`check_snr_trend`, :func:`check_snr_ratio`: the signal-to-noise ratio of the
  gradient of ``L_k`` for the encoder and for the decoder (Rainforth et al., 2018).
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tutorlib._validate import one_of, positive_float, positive_int
from tutorlib.checks import IdentityError, compare


def _log_w(log_w) -> torch.Tensor:
    if not isinstance(log_w, torch.Tensor) or log_w.dim() < 1 or log_w.shape[0] == 0:
        raise ValueError(f"log_w must be a tensor of log weights with the samples on dimension 0, got "
                         f"{tuple(log_w.shape) if isinstance(log_w, torch.Tensor) else type(log_w).__name__}")
    if not torch.isfinite(log_w).all():
        raise ValueError("log_w must be finite")
    return log_w


def normalized_weights(log_w: torch.Tensor) -> torch.Tensor:
    """The normalised importance weights ``w_i / sum_j w_j`` over dimension 0 (the samples)."""
    return torch.softmax(_log_w(log_w), dim=0)


def effective_sample_size(log_w: torch.Tensor) -> torch.Tensor:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` over dimension 0, from log weights: ``k``
    when all weights are equal, 1 when one weight carries everything."""
    log_w = _log_w(log_w)
    return torch.exp(2 * torch.logsumexp(log_w, dim=0) - torch.logsumexp(2 * log_w, dim=0))


@torch.no_grad()
def proposal_log_weights(model, x: torch.Tensor, k: int, proposal: str = "encoder", widen: float = 1.0,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Log weights ``ln q(x|z) + ln q(z) - ln r(z)`` of ``k`` draws from a proposal ``r``, shape (k, batch):
    ``proposal="encoder"``: ``r = N(mu(x), (widen * sigma(x))^2)`` (``widen = 1`` is the encoder itself);
    ``"prior"``: ``r = q(z) = N(0, I)``, so the weight is ``q(x|z)`` alone. Every such ``r`` gives
    ``E[w] = q(x)``; they differ in how spread out the weights are."""
    from tutorlib.vae import gaussian_log_prob

    k = positive_int("k", k)
    one_of("proposal", proposal, ("encoder", "prior"))
    widen = positive_float("widen", widen)
    mu, logvar = model.encode(x)
    u = torch.randn((k, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
    zero = torch.zeros_like(u)
    if proposal == "prior":
        return -model.nll(x, u)
    logvar_r = logvar + 2 * math.log(widen)
    z = mu + (0.5 * logvar_r).exp() * u
    return -model.nll(x, z) + gaussian_log_prob(z, zero, zero) - gaussian_log_prob(z, mu, logvar_r)


def bound_curve(log_w: torch.Tensor, ks: Sequence[int]) -> torch.Tensor:
    """Estimates of ``L_k(x)`` for each ``k`` in ``ks`` from one set of ``K`` log weights (K, n): the ``K``
    weights are cut into ``K / k`` disjoint groups of ``k``, each group gives one ``ln (1/k) sum w``,
    and the groups are averaged (an unbiased estimate of ``L_k``; for ``k = K`` it is ``L_K`` itself).
    Every ``k`` must divide ``K``. Returns (len(ks), n)."""
    log_w = _log_w(log_w)
    if log_w.dim() != 2:
        raise ValueError(f"log_w must have shape (K, n), got {tuple(log_w.shape)}")
    big = log_w.shape[0]
    out = []
    for k in ks:
        k = positive_int("k", k)
        if big % k:
            raise ValueError(f"each k must divide the number of weights K = {big}, got k = {k}")
        groups = log_w.reshape(big // k, k, -1)
        out.append((torch.logsumexp(groups, dim=1) - math.log(k)).mean(0))
    return torch.stack(out)


def reference_log_weights(model, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``ln q(x|z) + ln q(z) - ln p(z|x)`` at ``z = mu(x) + sigma(x) * u`` (u: (k, batch, z_dim)), written
    with ``torch.distributions`` only (no helper of :class:`tutorlib.vae.VAE` but its two networks):
    the independent side of the chapter's identity checks. Shape (k, batch)."""
    from torch.distributions import Bernoulli, Independent, Normal

    h = model.encoder(x)
    mu, logvar = h[:, : model.z_dim], h[:, model.z_dim:]
    sigma = torch.exp(logvar / 2)
    z = mu + sigma * u
    log_prior = Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1).log_prob(z)
    log_post = Independent(Normal(mu.expand_as(z), sigma.expand_as(z)), 1).log_prob(z)
    out = model.decoder(z)
    target = x.expand(z.shape[0], *x.shape)
    if model.likelihood == "bernoulli":
        log_lik = Independent(Bernoulli(logits=out), 1).log_prob(target)
    else:
        mean, logvar_x = model.decode(z)  # the decoder's Gaussian parameters (fixed, learned or per pixel)
        log_lik = Independent(Normal(mean, torch.exp(logvar_x / 2)), 1).log_prob(target)
    return log_lik + log_prior - log_post


def check_k1_shared_noise(model, x: torch.Tensor, seed: int = 0) -> None:
    """Su: "when k = 1 the IWAE loss is exactly the all-sampled loss (5)". At the same noise ``u``, in
    float64, ``model.iwae_bound(x, 1, u)`` must equal ``ln q(x|z) - ln p(z|x) + ln q(z)`` computed by
    :func:`reference_log_weights`; the tolerance 1e-9 nats is float64 round-off on numbers of ~100."""
    m = copy.deepcopy(model).double()
    xd = x.double()
    u = torch.randn(1, xd.shape[0], m.z_dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        lhs = m.iwae_bound(xd, 1, u=u)
        rhs = reference_log_weights(m, xd, u)[0]
    compare("L_1 = the all-sampled ELBO at the same noise (float64, per image)", lhs, rhs, atol=1e-9,
            names=("iwae_bound(x, 1, u)", "torch.distributions: ln q(x|z) + ln q(z) - ln p(z|x)"))


def check_k1_expectation(model, x: torch.Tensor, reps: int = 200, seed: int = 0, n_se: float = 4.0) -> None:
    """The expectation of the one-sample bound ``L_1`` (library, fresh noise) against the analytic-KL
    ELBO ``E_z[ln q(x|z)] - KL(p(z|x) || q(z))`` written with ``torch.distributions`` (its own draws of
    z, ``kl_divergence`` in closed form), averaged over ``x`` and ``reps`` draws each. The two sides are
    independent estimates of the same number; the tolerance is ``n_se`` standard errors of their
    difference, computed from the draws of each image (the images themselves are fixed)."""
    from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

    reps = positive_int("reps", reps)
    if model.likelihood != "bernoulli":
        raise ValueError("check_k1_expectation is written for a Bernoulli decoder")
    torch.manual_seed(seed)
    with torch.no_grad():
        xr = x.repeat(reps, 1)
        lhs = model.iwae_bound(xr, 1)  # (reps * n,)
        h = model.encoder(xr)
        mu, logvar = h[:, : model.z_dim], h[:, model.z_dim:]
        post = Independent(Normal(mu, torch.exp(logvar / 2)), 1)
        prior = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
        z = post.sample()
        rhs = Independent(Bernoulli(logits=model.decoder(z)), 1).log_prob(xr) - kl_divergence(post, prior)
    # the images are fixed, so only the spread over draws is noise: the variance over the draws of each
    # image, summed over images, divided by the number of draws and by n^2
    n = x.shape[0]
    lhs, rhs = lhs.double().view(reps, n), rhs.double().view(reps, n)
    se = math.sqrt(float((lhs.var(0) + rhs.var(0)).sum()) / reps) / n
    compare(f"E[L_1] = the analytic-KL ELBO ({x.shape[0]} images x {reps} draws; tolerance {n_se:g} SE)",
            float(lhs.double().mean()), float(rhs.double().mean()), atol=n_se * se,
            names=("mean iwae_bound(x, 1)", "torch.distributions: E ln q(x|z) - KL (closed form)"))


def check_bound_curve(ks: Sequence[int], per_image: torch.Tensor, n_se: float = 4.0) -> None:
    """``L_k`` must not decrease with ``k`` and must tighten: for successive ``k`` the mean (over images)
    of ``L_k'`` - ``L_k`` may fall below 0 only by ``n_se`` standard errors (paired by image), and
    ``L_K - L_1`` must exceed ``n_se`` standard errors. ``per_image``: (len(ks), n) from
    :func:`bound_curve`. Prints each step's mean change (and, since successive ``k`` need not grow by the
    same factor, the change per unit of ``ln k``); raises :class:`IdentityError`."""
    ks = [positive_int("k", k) for k in ks]
    if not isinstance(per_image, torch.Tensor) or per_image.dim() != 2 or per_image.shape[0] != len(ks):
        raise ValueError(f"per_image must be a tensor of shape ({len(ks)}, n)")
    if sorted(ks) != ks or len(set(ks)) != len(ks) or len(ks) < 2:
        raise ValueError(f"ks must be at least two increasing values, got {ks}")
    v = per_image.double()
    n = v.shape[1]
    steps = []
    for j in range(len(ks) - 1):
        d = v[j + 1] - v[j]
        se = float(d.std() / math.sqrt(n)) if n > 1 else 0.0
        steps.append((ks[j], ks[j + 1], float(d.mean()), se))
    per_log_k = [m / math.log(b / a) for a, b, m, _ in steps]
    total = v[-1] - v[0]
    total_se = float(total.std() / math.sqrt(n)) if n > 1 else 0.0
    print(f"L_k against k ({n} images; mean change, paired standard error):")
    print("    " + "; ".join(f"{a}->{b}: {m:+.3f} ({s:.3f})" for a, b, m, s in steps))
    print("    per unit of ln k: " + ", ".join(f"{g:.2f}" for g in per_log_k))
    print(f"    L_{ks[-1]} - L_{ks[0]} = {float(total.mean()):+.3f} nats (SE {total_se:.3f})")
    bad = [(a, b, m, s) for a, b, m, s in steps if m < -n_se * s]
    if bad:
        a, b, m, s = bad[0]
        raise IdentityError(f"L_k decreased from k = {a} to k = {b} by {-m:.3f} nats, more than {n_se:g} standard "
                            f"errors ({n_se * s:.3f})")
    if not float(total.mean()) > n_se * total_se:
        raise IdentityError(f"L_{ks[-1]} - L_{ks[0]} = {float(total.mean()):.3f} nats is not above {n_se:g} standard "
                            f"errors ({n_se * total_se:.3f}): the bound did not tighten with k")
    print(f"✓ L_k is non-decreasing in k (to within {n_se:g} SE) and tightens by more than {n_se:g} SE")


def _snr(g: torch.Tensor) -> torch.Tensor:
    """Per component ``|mean| / sd`` over replicates (dimension 0)."""
    return g.mean(0).abs() / g.std(0).clamp_min(1e-30)


def gradient_snr(model, x: torch.Tensor, ks: Sequence[int], reps: int = 128, seed: int = 0, boot: int = 50,
                 chunk: int = 32, return_gradients: bool = False) -> dict:
    """Rainforth et al.'s signal-to-noise ratio ``|E g| / sd(g)`` of the reparameterised gradient ``g`` of
    ``sum_x L_k(x)`` over the images ``x``, from ``reps`` independent replicates, for each ``k``:

    - ``"encoder"``: for the encoder's outputs ``(mu(x), log sigma^2(x))`` of each image (every encoder
      weight's gradient is a fixed linear map of these, image by image);
    - ``"decoder"``: for the bias of the decoder's output layer (a decoder weight shared by all images).

    Each entry is the median over components of the per-component SNR; ``"ratio"`` is the encoder's over the
    decoder's (how much the encoder is told relative to the decoder); ``"*_se"`` are bootstrap
    standard errors (``boot`` resamples of the replicates, the same resamples for both parts). ``"floor"`` is ``0.8 / sqrt(reps)``, about
    what an estimate gives when the true signal is 0. Bernoulli decoders only. With ``return_gradients``,
    ``"gradients"[k]`` holds the replicates themselves (``"encoder"``: (reps, n * 2 z_dim), ``"decoder"``:
    (reps, x_dim)); the noise of replicate ``r`` is drawn in order, ``k`` by ``k`` and chunk by chunk."""
    from tutorlib.vae import gaussian_log_prob

    if getattr(model, "likelihood", None) != "bernoulli":
        raise ValueError("model must be a tutorlib.vae.VAE with a Bernoulli decoder")
    x = model._check_x(x)
    reps, boot, chunk = positive_int("reps", reps, minimum=4), positive_int("boot", boot, minimum=2), positive_int("chunk", chunk)
    ks = [positive_int("k", k) for k in ks]
    gen = torch.Generator().manual_seed(positive_int("seed", seed, minimum=0))
    with torch.no_grad():
        mu0, logvar0 = model.encode(x)
    last = [m for m in model.decoder if isinstance(m, torch.nn.Linear)][-1]
    trunk = model.decoder[:-1]
    n, d = mu0.shape
    out = {"k": ks, "encoder": [], "encoder_se": [], "decoder": [], "decoder_se": [], "ratio": [], "ratio_se": [],
           "floor": 0.8 / math.sqrt(reps), "gradients": {}}
    boot_gen = np.random.default_rng(seed)
    for k in ks:
        g_enc, g_dec = [], []
        for start in range(0, reps, chunk):
            r = min(chunk, reps - start)
            mu = mu0.expand(r, n, d).clone().requires_grad_(True)
            logvar = logvar0.expand(r, n, d).clone().requires_grad_(True)
            bias = torch.zeros(r, 1, x.shape[1], dtype=x.dtype, device=x.device, requires_grad=True)
            u = torch.randn(k, r, n, d, generator=gen, dtype=x.dtype).to(x.device)  # CPU generator: reproducible
            z = mu + (0.5 * logvar).exp() * u  # (k, r, n, d)
            logits = last(trunk(z)) + bias  # the output bias, perturbed per replicate at 0
            log_lik = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
            zero = torch.zeros_like(z)
            log_w = log_lik + gaussian_log_prob(z, zero, zero) - gaussian_log_prob(z, mu, logvar)
            bound = torch.logsumexp(log_w, dim=0) - math.log(k)  # (r, n)
            gm, gl, gb = torch.autograd.grad(bound.sum(), (mu, logvar, bias))
            g_enc.append(torch.cat([gm, gl], dim=-1).reshape(r, -1))
            g_dec.append(gb.reshape(r, -1))
        if return_gradients:
            out["gradients"][k] = {"encoder": torch.cat(g_enc), "decoder": torch.cat(g_dec)}
        idx = torch.as_tensor(boot_gen.integers(0, reps, size=(boot, reps)))  # the same resamples for both parts
        resampled = {}
        for name, g in (("encoder", torch.cat(g_enc)), ("decoder", torch.cat(g_dec))):
            g = g.double()
            out[name].append(float(_snr(g).median()))
            medians = []
            for part in idx.split(25):  # resamples in blocks: (25, reps, components) at a time
                gb = g[part]
                medians.append((gb.mean(1).abs() / gb.std(1).clamp_min(1e-30)).median(-1).values)
            resampled[name] = torch.cat(medians)
            out[name + "_se"].append(float(resampled[name].std()))
        out["ratio"].append(out["encoder"][-1] / out["decoder"][-1])
        out["ratio_se"].append(float((resampled["encoder"] / resampled["decoder"]).std()))
    if not return_gradients:
        del out["gradients"]
    return out


def check_snr_trend(snr: dict, n_se: float = 3.0) -> None:
    """Rainforth et al.: as ``k`` grows, the encoder's gradient SNR falls (like ``1/sqrt(k)``) while the
    decoder's rises (like ``sqrt(k)``). Checks, with ``snr`` from :func:`gradient_snr`, that from the
    smallest to the largest ``k`` the encoder's SNR fell and the decoder's rose, each by more than
    ``n_se`` combined bootstrap standard errors; raises :class:`IdentityError`."""
    for key in ("k", "encoder", "encoder_se", "decoder", "decoder_se"):
        if key not in snr or len(snr[key]) != len(snr["k"]):
            raise ValueError(f"snr must be the dict of gradient_snr, with a value of {key!r} per k")
    if len(snr["k"]) < 2:
        raise ValueError("snr must hold at least two values of k")
    ks = snr["k"]
    for name, sign, word in (("encoder", -1, "fell"), ("decoder", 1, "rose")):
        a, b = snr[name][0], snr[name][-1]
        se = math.hypot(snr[name + "_se"][0], snr[name + "_se"][-1])
        change = b - a
        ok = sign * change > n_se * se
        print(f"{'✓' if ok else '✗'} {name} SNR from k = {ks[0]} to k = {ks[-1]}: {a:.3f} -> {b:.3f} "
              f"(change {change:+.3f}, {n_se:g} SE = {n_se * se:.3f})")
        if not ok:
            raise IdentityError(f"the {name}'s gradient SNR was expected to have {word} with k by more than "
                                f"{n_se:g} SE ({n_se * se:.3f}); it went from {a:.3f} to {b:.3f}")


def check_snr_ratio(snr: dict, n_se: float = 3.0) -> None:
    """The trade as k grows, relative: the encoder's gradient SNR divided by the decoder's (``snr["ratio"]``
    from :func:`gradient_snr`) must fall from the smallest to the largest ``k`` by more than ``n_se``
    combined bootstrap standard errors (the two ``k`` use independent noise). This can hold where the
    encoder's own SNR rises with ``k`` (a model trained on ``L_1``, far from the optimum of ``L_64``), as long
    as the decoder's rises faster. Raises :class:`IdentityError`."""
    for key in ("k", "ratio", "ratio_se"):
        if key not in snr or len(snr[key]) != len(snr["k"]):
            raise ValueError(f"snr must be the dict of gradient_snr, with a value of {key!r} per k")
    if len(snr["k"]) < 2:
        raise ValueError("snr must hold at least two values of k")
    ks, r = snr["k"], snr["ratio"]
    se = math.hypot(snr["ratio_se"][0], snr["ratio_se"][-1])
    change = r[-1] - r[0]
    ok = -change > n_se * se
    print(f"{'✓' if ok else '✗'} encoder SNR / decoder SNR from k = {ks[0]} to k = {ks[-1]}: {r[0]:.4f} -> {r[-1]:.4f} "
          f"(change {change:+.4f}, {n_se:g} SE = {n_se * se:.4f})")
    if not ok:
        raise IdentityError(f"the encoder's gradient SNR relative to the decoder's was expected to fall with k by more "
                            f"than {n_se:g} SE ({n_se * se:.4f}); it went from {r[0]:.4f} to {r[-1]:.4f}")


def check_estimate_higher(label: str, log_w_high: torch.Tensor, log_w_low: torch.Tensor, n_se: float = 4.0) -> float:
    """Two estimates ``ln mean w`` of the same ``ln q(x)`` (1-D log weights from two proposals, e.g. the
    encoder and the prior): the first must exceed the second by more than ``n_se`` combined standard
    errors. Each standard error is the delta method's, ``sqrt(1/ESS - 1/k)`` nats (the sd of ``w`` over
    ``sqrt(k)`` times its mean); with a handful of effective samples it is itself rough, so keep ``n_se``
    generous and the expected difference large. Prints both; raises :class:`IdentityError`. Returns the
    difference (nats)."""
    n_se = positive_float("n_se", n_se)
    parts = []
    for name, lw in (("log_w_high", log_w_high), ("log_w_low", log_w_low)):
        lw = _log_w(lw).double()
        if lw.dim() != 1 or lw.numel() < 2:
            raise ValueError(f"{name} must be a 1-D tensor of at least 2 log weights, got shape {tuple(lw.shape)}")
        k = lw.numel()
        est = float(torch.logsumexp(lw, 0) - math.log(k))
        ess = float(effective_sample_size(lw))
        parts.append((est, math.sqrt(max(1.0 / ess - 1.0 / k, 0.0)), ess, k))
    (a, sa, ea, ka), (b, sb, eb, kb) = parts
    se = math.hypot(sa, sb)
    ok = a - b > n_se * se
    print(f"{'✓' if ok else '✗'} {label}: {a:.2f} (ESS {ea:.1f} of {ka}, SE {sa:.2f}) against {b:.2f} "
          f"(ESS {eb:.1f} of {kb}, SE {sb:.2f}): higher by {a - b:.2f} nats; {n_se:g} SE = {n_se * se:.2f}")
    if not ok:
        raise IdentityError(f"{label}: {a:.3f} is not above {b:.3f} by more than {n_se:g} standard errors ({n_se * se:.3f})")
    return a - b


def check_iwae_effects(vae_curve: torch.Tensor, iwae_curve: torch.Tensor, spread: dict, seeds: int | None = None,
                       n_sd: float = 3.0) -> dict:
    """Burda et al.'s two effects of training with IWAE, on the same test images: its best estimate
    ``L_K`` (the plateau; last row of :func:`bound_curve`) is higher than the VAE's, and its gap
    ``L_K - L_1`` (first row) is wider. For each difference ``d`` of this run, the noise is the
    seed-to-seed sd (``spread[key]["sd"]`` over ``seeds`` seeds, by default ``spread[key]["n"]``, keys
    ``"plateau_difference"`` and ``"gap_difference"``; from :func:`tutorlib.vae.seed_spread`, best with this
    run's own seed left out) combined with the standard error over the images (paired). An effect passes

    - *in this run* if ``d > n_sd * noise``; or else
    - *over the seeds* if the seeds' mean exceeds ``n_sd`` standard errors of that mean, and this run
      agrees with it in sign and to within ``n_sd * noise``.

    Prints which; raises :class:`IdentityError` if neither holds. Returns the two differences."""
    for name, c in (("vae_curve", vae_curve), ("iwae_curve", iwae_curve)):
        if not isinstance(c, torch.Tensor) or c.dim() != 2 or c.shape[0] < 2:
            raise ValueError(f"{name} must be a (len(ks), n) tensor from bound_curve")
    if vae_curve.shape != iwae_curve.shape:
        raise ValueError("vae_curve and iwae_curve must be on the same k's and images")
    n = vae_curve.shape[1]
    plateau = (iwae_curve[-1] - vae_curve[-1]).double()
    gap = ((iwae_curve[-1] - iwae_curve[0]) - (vae_curve[-1] - vae_curve[0])).double()
    out = {}
    for label, d, key in (("plateau (best estimate), IWAE - VAE", plateau, "plateau_difference"),
                          ("gap L_K - L_1, IWAE - VAE", gap, "gap_difference")):
        seed_sd = positive_float(f"spread[{key!r}]['sd']", spread[key]["sd"])
        n_seeds = positive_int("seeds", spread[key].get("n") if seeds is None else seeds, minimum=2)
        seed_mean = float(spread[key]["mean"])
        img_se = float(d.std() / math.sqrt(n))
        noise = math.hypot(seed_sd, img_se)
        m = float(d.mean())
        mean_se = seed_sd / math.sqrt(n_seeds)
        here = m > n_sd * noise
        over_seeds = seed_mean > n_sd * mean_se and m > 0 and abs(m - seed_mean) <= n_sd * noise
        how = (f"clear in this run (above {n_sd:g} x noise = {n_sd * noise:.2f})" if here else
               f"within this run's noise ({n_sd:g} x {noise:.2f}), but over {n_seeds} seeds {seed_mean:+.2f} "
               f"(SE {mean_se:.2f}), which this run agrees with" if over_seeds else "not established")
        print(f"{'✓' if here or over_seeds else '✗'} {label}: {m:+.2f} nats in this run; noise {noise:.2f} "
              f"(seeds {seed_sd:.2f}, images {img_se:.2f}): {how}")
        if not (here or over_seeds):
            raise IdentityError(f"{label} = {m:.3f} nats: neither above {n_sd:g} x its noise ({n_sd * noise:.3f}) "
                                f"nor established over the seeds ({seed_mean:.3f}, SE {mean_se:.3f}) and agreed with")
        out[key] = m
    return out


def exact_log_marginal_1d(model, x: torch.Tensor, z_max: float = 10.0, points: int = 8001) -> torch.Tensor:
    """``ln q(x) = ln int q(x|z) N(z; 0, 1) dz`` by quadrature on ``[-z_max, z_max]``, for a model with a
    one-dimensional latent (``model.z_dim == 1``): the exact answer that importance weights estimate."""
    from tutorlib.vae import LOG_2PI

    if getattr(model, "z_dim", None) != 1:
        raise ValueError(f"model must have z_dim = 1 (quadrature over one latent), got {getattr(model, 'z_dim', None)}")
    z_max, points = positive_float("z_max", z_max), positive_int("points", points, minimum=3)
    z = torch.linspace(-z_max, z_max, points, dtype=x.dtype)[:, None, None]  # (points, 1, 1)
    with torch.no_grad():
        log_joint = -model.nll(x, z) - 0.5 * (LOG_2PI + z[..., 0] ** 2)  # (points, n)
    return torch.logsumexp(log_joint, dim=0) + math.log(2 * z_max / (points - 1))


def check_unbiased_weights(log_w: torch.Tensor, exact_log_q: torch.Tensor, n_se: float = 4.0, label: str = "") -> None:
    """Importance weights are unbiased for ``q(x)``: the mean of ``w / q(x)`` over the ``k`` draws (log
    weights (k, n)), averaged over the ``n`` images, must be 1 to within ``n_se`` standard errors
    (computed from the draws). Raises :class:`IdentityError`."""
    log_w = _log_w(log_w).double()
    if not isinstance(exact_log_q, torch.Tensor) or exact_log_q.shape != log_w.shape[1:]:
        raise ValueError(f"exact_log_q must be a tensor of shape {tuple(log_w.shape[1:])}")
    ratio = torch.exp(log_w - exact_log_q.double())  # w / q(x)
    k, n = ratio.shape
    se = float(torch.sqrt((ratio.var(0) / k).sum()) / n)
    compare(f"mean of w / q(x){label} ({n} images x {k} draws; {n_se:g} SE)", float(ratio.mean()), 1.0,
            atol=n_se * se, names=("importance weights", "exact (quadrature)"))
