"""tutorlib: the tested library behind the book *VAEs, flows and GANs, after Su Jianlin*.

Every model, loss, estimator and widget that a chapter uses lives here, one concept per module:

- :mod:`tutorlib.runtime`      device, run mode (quick/full), seeding, threads
- :mod:`tutorlib.data`         embedded MNIST subset, 8x8 digits, full MNIST download, binarize/dequantize
- :mod:`tutorlib.integration`  quadrature vs Monte Carlo (chapter 1)
- :mod:`tutorlib.divergences`  KL, Bhattacharyya (chapter 1) and the dual-form divergences (chapters 7-8)
- :mod:`tutorlib.flows`        invertible layers with log-determinants, ``Flow``, ``NICE``, ``Glow`` (chapters 5-6)
- :mod:`tutorlib.vae`          the VAE, IWAE and the two gradient estimators (chapters 2-4)
- :mod:`tutorlib.iwae`         importance weights, the IWAE bound's checks, the gradient SNR (chapter 3)
- :mod:`tutorlib.fvae`         the general f-VAE loss, its two special cases, the model ``FVAE`` (chapter 6)
- :mod:`tutorlib.gan`          GAN losses (SGAN, WGAN-GP, GAN-QP), one training loop, MNIST GANs (chapters 7-8)
- :mod:`tutorlib.metrics`      nats, bits per dimension and the dequantisation bound
- :mod:`tutorlib.train`        one explicit training loop with progress, NaN guard and resumable checkpoints
- :mod:`tutorlib.plotting`     one consistent plotting style
- :mod:`tutorlib.widgets`      sliders over pure functions, with a static small-multiples fallback
- :mod:`tutorlib.checks`       printed comparisons of two independent computations that raise on disagreement
"""

from tutorlib.checks import IdentityError, compare
from tutorlib.source import show

__version__ = "0.1.0"
__all__ = ["IdentityError", "__version__", "compare", "show"]
