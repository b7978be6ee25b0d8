import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # small models; avoids oversubscribing a shared 2-core machine


@pytest.fixture(autouse=True)
def _quick_and_quiet(monkeypatch):
    """Unit tests run in quick mode without progress bars, whatever the caller's environment."""
    monkeypatch.setenv("TUTORLIB_MODE", "quick")
    monkeypatch.setenv("TUTORLIB_PROGRESS", "0")
    torch.manual_seed(0)
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
