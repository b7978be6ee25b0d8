"""Likelihood metrics: importance-sampled negative log-likelihoods of VAEs (chapters 3-4).

Every number is in nats per example unless a name says bits per dimension. The data's
binarisation (dynamic or fixed) changes the numbers and is stated wherever one is reported.
"""

from __future__ import annotations

import math

import torch

from tutorlib._validate import positive_int


def iwae_nll(model, x: torch.Tensor, k: int = 5000, chunk: int = 500, batch_size: int = 100) -> torch.Tensor:
    """The importance-sampled estimate ``-L_k = -ln (1/k) sum_i q(x, z_i) / p(z_i | x)`` of ``-ln q(x)``
    per example (nats), with ``k`` samples from the encoder, computed in chunks of ``chunk``
    samples and ``batch_size`` examples so memory stays bounded. ``model`` needs ``log_weights(x, k)``
    returning (k, batch) log importance weights (as :class:`tutorlib.vae.VAE` does). Since
    ``L_k <= ln q(x)``, this over-estimates the NLL, by less as ``k`` grows."""
    k, chunk, batch_size = positive_int("k", k), positive_int("chunk", chunk), positive_int("batch_size", batch_size)
    if not hasattr(model, "log_weights"):
        raise ValueError("model must provide log_weights(x, k), like tutorlib.vae.VAE")
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            parts = [torch.logsumexp(model.log_weights(xb, min(chunk, k - j)), dim=0) for j in range(0, k, chunk)]
            out.append(-(torch.logsumexp(torch.stack(parts), dim=0) - math.log(k)))
    return torch.cat(out)


def bits_per_dim(nats: float | torch.Tensor, dim: int):
    """Convert a negative log-likelihood in nats per example to bits per dimension."""
    return nats / (positive_int("dim", dim) * math.log(2.0))
