"""Data: the embedded sets, binarize/dequantize, and the download path against local fixtures only."""

import hashlib
import io
import urllib.error

import numpy as np
import pytest
import torch

from tutorlib import data


@pytest.fixture(scope="module")
def subset_train():
    return data.mnist_subset("train")


def test_embedded_subset_splits(subset_train):
    test = data.mnist_subset("test")
    assert subset_train.pixels.shape == (4000, 784) and test.pixels.shape == (1000, 784)
    assert subset_train.pixels.dtype == torch.uint8 and subset_train.levels == 256
    assert torch.equal(torch.bincount(subset_train.labels), torch.full((10,), 400))
    assert torch.equal(torch.bincount(test.labels), torch.full((10,), 100))
    both = torch.cat([subset_train.pixels, test.pixels])
    assert torch.unique(both, dim=0).shape[0] == both.shape[0]  # no image in both splits
    x = subset_train.x
    assert x.dtype == torch.float32 and float(x.min()) == 0.0 and float(x.max()) == 1.0


def test_digits8x8():
    d = data.digits8x8()
    assert d.pixels.shape == (1797, 64) and d.levels == 17 and int(d.pixels.max()) == 16
    assert float(d.x.max()) == 1.0


def test_binarize(subset_train):
    x = subset_train.x[:500]
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([data.binarize(x, "dynamic", generator=g) for _ in range(200)])
    assert set(torch.unique(draws).tolist()) <= {0.0, 1.0}
    freq = draws.mean(0)
    # per pixel, the frequency of ones estimates x with variance x(1-x)/200
    predicted_rms = float(torch.sqrt((x * (1 - x)).mean() / 200))
    assert float(torch.sqrt(((freq - x) ** 2).mean())) == pytest.approx(predicted_rms, rel=0.05)
    assert float(freq.mean()) == pytest.approx(float(x.mean()), abs=4 * predicted_rms / np.sqrt(x.numel()))
    assert torch.equal(data.binarize(x, "threshold"), (x > 0.5).float())


def test_dequantize_stays_in_each_pixels_bin(subset_train):
    p = subset_train.pixels[:200]
    x = data.dequantize(p, generator=torch.Generator().manual_seed(1))
    assert x.min() >= 0 and x.max() < 1
    assert torch.equal(torch.floor(x * 256).to(torch.uint8), p)
    assert float((x * 256 - p.float()).mean()) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("call, word", [
    (lambda: data.mnist_subset("validation"), "split"),
    (lambda: data.mnist("dev"), "split"),
    (lambda: data.mnist("train", source="web"), "source"),
    (lambda: data.binarize(torch.rand(3), mode="random"), "mode"),
    (lambda: data.binarize(torch.tensor([0, 1]), mode="dynamic"), "x"),
    (lambda: data.binarize(torch.tensor([0.0, 1.5])), "x"),
    (lambda: data.dequantize(torch.tensor([0.5])), "pixels"),
    (lambda: data.dequantize(torch.tensor([3]), levels=1), "levels"),
    (lambda: data.download("not a url", "x", "0" * 64), "url"),
    (lambda: data.download("file:///x", "x", "abc"), "sha256"),
])
def test_bad_arguments_raise_value_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# --- downloads, always from a local fixture (file:// URLs), never the network -----------------

@pytest.fixture()
def fixture_npz(tmp_path, subset_train):
    """A tiny file in the Keras mnist.npz format made from the embedded digits."""
    images = subset_train.pixels.numpy().reshape(-1, 28, 28)
    labels = subset_train.labels.numpy()
    buf = io.BytesIO()
    np.savez(buf, x_train=images[:30], y_train=labels[:30], x_test=images[30:40], y_test=labels[30:40])
    path = tmp_path / "source" / "mnist.npz"
    path.parent.mkdir()
    path.write_bytes(buf.getvalue())
    return path, hashlib.sha256(buf.getvalue()).hexdigest()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("TUTORLIB_DATA", str(d))
    return d


def test_download_verifies_and_caches(fixture_npz, cache):
    src, digest = fixture_npz
    got = data.mnist("train", source="full", url=src.as_uri(), sha256=digest)
    assert len(got) == 30 and got.source == "mnist:train"
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz"]
    assert data.sha256_file(cache / "mnist.npz") == digest
    assert len(data.mnist("test", source="full", url=src.as_uri(), sha256=digest)) == 10
    # a second call finds the verified file and does not download again
    src.unlink()
    assert len(data.mnist("train", source="full", url=src.as_uri(), sha256=digest)) == 30


def test_wrong_checksum_is_rejected_and_leaves_nothing(fixture_npz, cache):
    src, digest = fixture_npz
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.mnist("train", source="full", url=src.as_uri(), sha256=wrong)
    assert list(cache.iterdir()) == []


def test_corrupted_download_is_rejected_and_leaves_nothing(fixture_npz, cache, tmp_path, monkeypatch):
    src, digest = fixture_npz
    corrupted = tmp_path / "corrupted.npz"
    raw = bytearray(src.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    corrupted.write_bytes(bytes(raw[: len(raw) - 100]))
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.download(corrupted.as_uri(), cache / "mnist.npz", digest)
    # in full mode, source="auto" has an offline fallback, but a bad file is still an error
    monkeypatch.setenv("TUTORLIB_MODE", "full")
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.mnist("train", source="auto", url=corrupted.as_uri(), sha256=digest)
    assert list(cache.iterdir()) == []


def test_corrupted_cache_file_is_replaced(fixture_npz, cache):
    src, digest = fixture_npz
    cache.mkdir()
    (cache / "mnist.npz").write_bytes(b"truncated")
    assert len(data.mnist("train", source="full", url=src.as_uri(), sha256=digest)) == 30
    assert data.sha256_file(cache / "mnist.npz") == digest


def test_quick_mode_never_touches_the_network(monkeypatch, cache):
    def boom(*a, **k):
        raise AssertionError("urlopen called in quick mode")

    monkeypatch.setattr("urllib.request.urlopen", boom)
    assert data.mnist("train").source == "mnist-subset:train"


def test_offline_full_mode_falls_back_with_a_warning(monkeypatch, cache):
    monkeypatch.setenv("TUTORLIB_MODE", "full")

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.warns(UserWarning, match="embedded 5,000-digit subset"):
        got = data.mnist("test")
    assert got.source == "mnist-subset:test" and not got.full
    assert "download failed" in got.fallback_reason and "no network" in got.fallback_reason
    # the chapters' banner says so above their results, with the reason
    banner = data.fallback_banner(got, display=False)
    assert banner.startswith("FULL MODE ON THE EMBEDDED SUBSET") and "no network" in banner
    assert "1,000 digits" in banner
    with pytest.raises(data.MissingDataError, match="mnist.npz"):
        data.mnist("test", source="full")
    with pytest.raises(data.MissingDataError):  # a reproduction asks for no fallback
        data.mnist("test", fallback=False)
    assert list(cache.iterdir()) == []


def test_banner_is_silent_in_quick_mode_and_on_full_data(fixture_npz, cache, monkeypatch):
    src, digest = fixture_npz
    sub = data.mnist_subset("test")
    assert data.fallback_banner(sub, display=False) is None  # quick mode: the subset is the plan
    monkeypatch.setenv("TUTORLIB_MODE", "full")
    full = data.full_mnist("train", src, sha256=digest)
    assert data.fallback_banner(full, display=False) is None
    text = data.fallback_banner(full, sub, display=False)  # a subset chosen on purpose in full mode
    assert "1,000 digits" in text and "the data were chosen so" in text
    with pytest.raises(ValueError, match="Digits"):
        data.fallback_banner()


# --- full MNIST without fallback: what the scripts and reproductions use ---------------------------

def test_full_mnist_refuses_a_missing_file_with_the_how_to_message(tmp_path, monkeypatch):
    monkeypatch.delenv("TUTORLIB_DATA", raising=False)
    with pytest.raises(data.MissingDataError) as err:
        data.full_mnist("train", tmp_path / "nowhere" / "mnist.npz")
    msg = str(err.value)
    assert "no file at" in msg and "--data" in msg and "TUTORLIB_DATA" in msg and data.MNIST_SHA256 in msg
    monkeypatch.setenv("TUTORLIB_DATA", str(tmp_path / "empty"))
    with pytest.raises(data.MissingDataError, match="no file at"):
        data.full_mnist("test")
    assert isinstance(err.value, FileNotFoundError)


def test_full_mnist_refuses_a_file_with_another_checksum(fixture_npz):
    src, digest = fixture_npz
    # the fixture is a valid mnist.npz in format, but not MNIST: its sha256 is not the known one
    with pytest.raises(data.MissingDataError, match="checksum mismatch"):
        data.full_mnist("train", src)
    # nor does mnist() fall back to the subset when a named file is wrong, in any mode
    with pytest.raises(data.MissingDataError, match="checksum mismatch"):
        data.mnist("train", source="full", path=src)


def test_full_mnist_reads_a_verified_file_and_records_it(fixture_npz, monkeypatch):
    src, digest = fixture_npz
    train = data.full_mnist("train", src, sha256=digest)
    test = data.full_mnist("test", src.parent, sha256=digest)  # a directory holding mnist.npz
    assert train.full and train.sha256 == digest and train.path == str(src.resolve()) and len(test) == 10
    rec = data.record(train, test)
    assert rec == {"source": "mnist:train, mnist:test", "full": True, "sha256": digest, "path": str(src.resolve()),
                   "sizes": {"mnist:train": 30, "mnist:test": 10}, "fallback_reason": None}
    sub = data.record(data.mnist_subset("test"))
    assert sub["full"] is False and sub["sha256"].startswith("arrays:") and sub["path"] is None
    assert data.record(data.mnist_subset("test"))["sha256"] == sub["sha256"]  # a content digest: stable
    # TUTORLIB_DATA may name the file itself
    monkeypatch.setenv("TUTORLIB_DATA", str(src))
    assert data.mnist_file() == src and data.cache_dir() == src.parent
    assert len(data.full_mnist("train", sha256=digest)) == 30
    with pytest.raises(ValueError, match="Digits"):
        data.record()


def test_load_rejects_a_file_that_is_not_mnist(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match="not an MNIST npz"):
        data.load_mnist_npz(path, "train")


def test_subset_prefixes_mix_the_classes():
    test = data.mnist_subset("test")
    assert len(torch.unique(test.labels[:50])) == 10

# --- toy 2-D sets ------------------------------------------------------------------------------

def test_toy2d_shapes_and_geometry():
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    for name in data.TOY2D:
        pts = data.toy2d(name, 500, generator=g())
        assert pts.shape == (500, 2) and pts.dtype == torch.float32
        assert torch.equal(pts, data.toy2d(name, 500, generator=g()))  # seeded: repeatable
    moons = data.toy2d("moons", 4000, noise=0.0, generator=g())
    d0 = (moons - torch.tensor([0.0, 0.0])).norm(dim=1)
    d1 = (moons - torch.tensor([1.0, 0.5])).norm(dim=1)
    assert torch.allclose(torch.minimum((d0 - 1).abs(), (d1 - 1).abs()), torch.zeros(4000), atol=1e-5)
    assert 0.45 < float((moons[:, 1] > 0.25).float().mean()) < 0.55  # the two moons, half each
    banana = data.toy2d("banana", 20_000, generator=g()).double()
    residual = banana[:, 1] - (0.5 * banana[:, 0] ** 2 - 1)
    assert float(residual.std()) == pytest.approx(0.25, rel=0.03)
    assert float(residual.mean()) == pytest.approx(0.0, abs=0.01)
    rings = data.toy2d("rings", 4000, noise=0.0, generator=g())
    assert set(torch.round(rings.norm(dim=1), decimals=4).unique().tolist()) == {1.0, 2.0}


@pytest.mark.parametrize("kwargs, word", [
    (dict(name="spiral"), "name"),
    (dict(n=0), "n"),
    (dict(noise=-0.1), "noise"),
    (dict(noise=float("nan")), "noise"),
])
def test_toy2d_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        data.toy2d(**kwargs)
