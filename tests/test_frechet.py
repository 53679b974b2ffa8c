"""Tests for coldlib.evaluation (Fréchet distances, FD_MNIST-CNN, Inception FID) and coldlib.evaluation.classifier.

Lesson: 03_sampling_naive_vs_improved. Fast: small matrices, the shipped 122k-parameter classifier, at most
2,000 MNIST images. The MNIST tests need the offline MNIST files (COLDLIB_DATA_DIR, as in test_data.py); the
Inception tests never touch the network (COLDLIB_OFFLINE=1 and the download functions replaced), and the one
that runs the Inception network end to end needs torch-fidelity and is skipped without it.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

import coldlib.evaluation.classifier as clf
import coldlib.evaluation.frechet as fr
from coldlib.data import load_images
from coldlib.degradations import GaussianNoise
from coldlib.experiments import preset
from coldlib.diffusion import ColdDiffusion
from coldlib.evaluation import evaluate_restoration, format_frechet_table
from coldlib.experiments import paper_table
from coldlib.unet import UNet, unet_preset

_DATA = Path(os.environ.get("COLDLIB_DATA_DIR", "") or "/nonexistent")
needs_mnist = pytest.mark.skipif(not (_DATA / "MNIST" / "raw").is_dir(),
                                 reason="set COLDLIB_DATA_DIR to a folder with MNIST/raw (offline MNIST)")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _spd(d: int, rng: np.random.Generator, rank: int | None = None) -> np.ndarray:
    a = rng.normal(size=(d, rank or 2 * d))
    return a @ a.T / a.shape[1]


@pytest.fixture(scope="module")
def heldout():
    """The held-out MNIST images (float, [-1, 1]) and labels, with offline loading forced: the 10,000 test images
    when the training split is on disk, else the fallback's last 2,000 test images."""
    if not (_DATA / "MNIST" / "raw").is_dir():
        pytest.skip("set COLDLIB_DATA_DIR to a folder with MNIST/raw (offline MNIST)")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLDLIB_OFFLINE", "1")
    try:
        test = load_images("mnist", "test")
    finally:
        mp.undo()
    return test.float(), test.labels


# ------------------------------------------------------------------------------------------ the distance


def test_identical_gaussians_give_zero() -> None:
    rng = _rng()
    for d in (1, 5, 64):
        mu, sigma = rng.normal(size=d), _spd(d, rng)
        assert fr.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9 * d)
    # Singular covariance (fewer samples than dimensions, as with dead features): still exactly ~0.
    stats = fr.FeatureStats.from_features(rng.normal(size=(20, 64)))
    assert stats.frechet_distance(stats) == pytest.approx(0.0, abs=1e-9)


def test_diagonal_closed_form() -> None:
    rng = _rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    a, b = rng.uniform(0.1, 3, size=8), rng.uniform(0.1, 3, size=8)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert fr.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    # Tensors work too, in float64 whatever their dtype.
    got = fr.frechet_distance(torch.tensor(mu1, dtype=torch.float32), torch.diag(torch.tensor(a)),
                              torch.tensor(mu2), torch.diag(torch.tensor(b)))
    assert got == pytest.approx(expected, rel=1e-6)


def test_matches_scipy_sqrtm_for_full_covariances() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    rng = _rng(2)
    for d in (3, 32):
        s1, s2, m1, m2 = _spd(d, rng), _spd(d, rng), rng.normal(size=d), rng.normal(size=d)
        covmean = linalg.sqrtm(s1 @ s2).real
        expected = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
        assert fr.frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="vectors of one length"):
        fr.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="3x3"):
        fr.frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        fr.frechet_distance(np.array([np.nan]), np.eye(1), np.zeros(1), np.eye(1))
    with pytest.raises(ValueError, match="at least 2"):
        _ = fr.FeatureStats.from_features(np.zeros((1, 4))).cov


def test_feature_stats_batched_equals_whole() -> None:
    f = _rng(3).normal(size=(1000, 16)) * 3 + 5  # a large mean: the naive sum-of-squares formula loses digits
    whole = fr.FeatureStats.from_features(f)
    batched = fr.FeatureStats()
    for i in range(0, 1000, 37):
        batched.update(torch.from_numpy(f[i : i + 37]))  # tensors too
    np.testing.assert_allclose(whole.mean, f.mean(0), rtol=1e-12)
    np.testing.assert_allclose(whole.cov, np.cov(f, rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(batched.cov, whole.cov, rtol=1e-10, atol=1e-12)
    assert batched.n == 1000
    with pytest.raises(ValueError, match="dimensions"):
        batched.update(np.zeros((2, 3)))


# -------------------------------------------------------------------------------- names and tables


def test_column_names_differ_and_are_explicit() -> None:
    assert fr.fd_column_name("mnist-cnn") == "FD_MNIST-CNN"
    assert fr.fd_column_name("inception") == "FID"
    assert fr.fd_column_name("mnist-cnn") != fr.fd_column_name("inception")
    assert "FID" not in fr.fd_column_name("mnist-cnn")
    with pytest.raises(ValueError, match="mnist-cnn"):
        fr.fd_column_name("fid")


def test_tables_never_mix_the_two() -> None:
    ours = {"Degraded": {"SSIM": 0.3, "RMSE": 0.29, "FD_MNIST-CNN": 50.0},
            "Direct": {"SSIM": 0.7, "RMSE": 0.15, "FD_MNIST-CNN": 2.0}}
    with pytest.raises(ValueError, match="must not share a table"):
        fr.check_no_mixing({"Direct": {"FD_MNIST-CNN": 1.0, "FID": 5.0}})
    with pytest.raises(ValueError, match="paper"):
        fr.check_no_mixing(ours, paper_table("blur", "mnist"))
    table = format_frechet_table(ours, paper_table("blur", "mnist"))
    assert "FD_MNIST-CNN" in table and "FID (paper)" not in table and "438.59" not in table
    assert "SSIM (paper)" in table and "not Inception FID" in table and "left out" in table
    fid = format_frechet_table({"Direct": {"SSIM": 0.7, "FID": 6.0}}, paper_table("blur", "mnist"))
    assert "FID (paper)" in fid and "Inception FID" in fid and "FD_MNIST-CNN" not in fid


# ------------------------------------------------------------------------------------- classifier


def test_classifier_shape_and_size() -> None:
    torch.manual_seed(0)
    model = clf.MnistCNN().eval()
    assert 50_000 <= sum(p.numel() for p in model.parameters()) <= 150_000
    assert model.features(torch.zeros(3, 1, 32, 32)).shape == (3, clf.FEATURE_DIM)
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    with pytest.raises(ValueError, match="32x32"):
        model.features(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="float"):
        model.features(torch.zeros(2, 1, 32, 32, dtype=torch.uint8))


def test_shipped_classifier_files_are_verified() -> None:
    weights = clf.shipped_classifier_path()
    config = json.loads(weights.with_suffix(".json").read_text())
    assert config["format"] == clf.CLASSIFIER_FORMAT
    assert config["sha256"] == clf.SHIPPED_SHA256 == clf.sha256_of(weights)
    assert weights.stat().st_size < 1_000_000
    # trained on MNIST's official training split, its accuracy measured on all 10,000 test images
    assert config["training_data"]["split"] == "train" and config["training_data"]["count"] == 60000
    assert "official training split" in config["data"]["train"] and "official test split" in config["data"]["heldout"]
    assert config["metrics"]["heldout_images"] == 10000
    assert config["metrics"]["heldout_accuracy"] >= 0.95


def test_classifier_load_errors(tmp_path: Path) -> None:
    weights = clf.shipped_classifier_path()
    with pytest.raises(FileNotFoundError, match="no classifier weights"):
        clf.load_classifier(tmp_path / "nothing")
    shutil.copy(weights, tmp_path / "c.safetensors")
    with pytest.raises(FileNotFoundError, match="sidecar"):
        clf.load_classifier(tmp_path / "c")
    shutil.copy(weights.with_suffix(".json"), tmp_path / "c.json")
    assert isinstance(clf.load_classifier(tmp_path / "c.safetensors").model, clf.MnistCNN)
    with pytest.raises(ValueError, match="expected_sha256"):
        clf.load_classifier(tmp_path / "c", expected_sha256="0" * 64)
    raw = (tmp_path / "c.safetensors").read_bytes()
    (tmp_path / "c.safetensors").write_bytes(raw[: len(raw) // 2])  # truncated
    with pytest.raises(ValueError, match="corrupted, truncated"):
        clf.load_classifier(tmp_path / "c")
    # A truncated file whose sidecar hash was updated is still refused (safetensors cannot parse it), never unpickled.
    config = json.loads((tmp_path / "c.json").read_text())
    config["sha256"] = clf.sha256_of(tmp_path / "c.safetensors")
    (tmp_path / "c.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="corrupted or truncated"):
        clf.load_classifier(tmp_path / "c")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        clf.load_classifier(tmp_path / "c")


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = clf.MnistCNN().eval()
    path = clf.save_classifier(tmp_path / "mine", model, {"data": "stand-in", "steps": 0})
    loaded = clf.load_classifier(path)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded.model.features(x), model.features(x))
    assert loaded.config["steps"] == 0 and loaded.config["sha256"] == clf.sha256_of(path)


@pytest.mark.slow
def test_training_learns_a_toy_problem() -> None:
    # Two "classes" that differ in brightness of the left half: a few steps suffice.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 32, 32, generator=g) * 0.2 - 1
    y = torch.arange(64) % 2
    x[y == 1, :, :, :16] += 1.5
    model = clf.train_classifier(x, y, steps=30, batch_size=32, lr=3e-3)
    assert not model.training
    assert clf.accuracy(model, x, y) == 1.0


@needs_mnist
def test_shipped_classifier_reproduces_its_accuracy(heldout) -> None:
    images, labels = heldout
    loaded = clf.load_shipped_classifier()
    recorded = loaded.config["metrics"]["heldout_accuracy"]
    acc = clf.accuracy(loaded.model, images[:500], labels[:500])
    assert acc >= 0.95
    # 500 of the held-out images the JSON's accuracy was measured on: a 500-image accuracy has a standard error of
    # sqrt(0.99 * 0.01 / 500) ~ 0.0045, so 0.02 is over 4 standard errors on any machine.
    assert acc == pytest.approx(recorded, abs=0.02)


# --------------------------------------------------------------------------------------- FD_MNIST-CNN


@needs_mnist
@pytest.mark.slow
def test_fd_mnist_cnn_separates_real_from_blurred(heldout) -> None:
    images, _ = heldout
    real, other = images[:1000], images[1000:]
    D = preset("blur", "mnist")
    blurred = D(other, D.T)
    same = fr.mnist_fd(real, other)
    half = fr.mnist_fd(real, D(other, D.T // 4))
    far = fr.mnist_fd(real, blurred)
    assert 0 <= same < half < far
    assert far > 20 * same
    assert fr.mnist_fd(real, real) == pytest.approx(0.0, abs=1e-6)


def test_add_frechet_column_fills_results_rows() -> None:
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(40, 1, 32, 32, generator=g) * 2 - 1
    images = {"Degraded": torch.zeros(40, 1, 32, 32) + 0.1 * torch.randn(40, 1, 32, 32, generator=g),
              "Direct": ref.flip(0)}
    results = {"Degraded": {"SSIM": 0.1}, "Direct": {"SSIM": 0.9}}
    values = fr.add_frechet_column(images, ref, "mnist-cnn", results=results)
    assert set(values) == {"Degraded", "Direct"}
    assert values["Direct"] == pytest.approx(0.0, abs=1e-6)  # the same images in another order
    assert values["Degraded"] > 0
    assert results["Direct"]["FD_MNIST-CNN"] == values["Direct"] and results["Direct"]["SSIM"] == 0.9
    with pytest.raises(ValueError, match="must not share a table"):
        fr.add_frechet_column(images, ref, "inception", results=results)
    with pytest.raises(ValueError, match="not in results"):
        fr.add_frechet_column({"Algorithm 2": ref}, ref, results={"Direct": {}})


def test_frechet_column_measures_the_evaluate_restoration_rows() -> None:
    torch.manual_seed(0)
    D = GaussianNoise(3)  # a random ingredient z, so the generator's use matters
    diffusion = ColdDiffusion(UNet(unet_preset("tiny", 1)), D)
    x0 = torch.rand(10, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    methods = ("direct", "improved")
    rows = evaluate_restoration(diffusion, x0, batch_size=4, generator=torch.Generator().manual_seed(5),
                                methods=methods, frechet="mnist-cnn")
    got = {row: values[fr.FD_MNIST_CNN] for row, values in rows.items()}
    assert list(got) == list(rows) == ["Degraded", "Direct", "Algorithm 2"]
    # Rebuild the same images by hand, as evaluate_restoration does, and measure them in one go.
    g = torch.Generator().manual_seed(5)
    parts: dict[str, list[torch.Tensor]] = {row: [] for row in rows}
    with torch.no_grad():
        for start in range(0, 10, 4):
            batch = x0[start : start + 4]
            z = D.draw_z(batch, g)
            xt = D(batch, D.T, z)
            parts["Degraded"].append(xt)
            parts["Direct"].append(diffusion.sample(xt, method="direct", z=z))
            parts["Algorithm 2"].append(diffusion.sample(xt, method="improved", z=z))
    expected = fr.frechet_column({row: torch.cat(p) for row, p in parts.items()}, x0, "mnist-cnn")
    for row in rows:
        assert got[row] == pytest.approx(expected[row], rel=1e-6, abs=1e-6)


def test_mnist_fd_refuses_wrong_images() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        fr.mnist_fd(torch.zeros(1, 1, 32, 32), torch.zeros(5, 1, 32, 32))
    with pytest.raises(ValueError, match="32x32"):
        fr.mnist_fd(torch.zeros(4, 3, 32, 32), torch.zeros(4, 3, 32, 32))


# ----------------------------------------------------------------------------------------- Inception


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Offline, no weights anywhere (empty torch hub cache), and every download path fails the test."""
    def forbidden(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    monkeypatch.delenv("COLDLIB_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", forbidden)
    monkeypatch.setattr(torch.hub, "download_url_to_file", forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)


def test_inception_fid_offline_raises_a_clear_error(no_network) -> None:
    x = torch.zeros(4, 1, 32, 32)
    with pytest.raises(RuntimeError) as info:
        fr.inception_fid(x, x)
    assert isinstance(info.value, fr.InceptionUnavailable)
    message = str(info.value)
    for phrase in ("COLDLIB_OFFLINE=1", "weights_path", "COLDLIB_INCEPTION_WEIGHTS", "pip install torch-fidelity",
                   fr.INCEPTION_WEIGHTS_FILE, "FD_MNIST-CNN", "NOT comparable"):
        assert phrase in message


def test_evaluate_restoration_without_inception_fails_before_sampling(no_network) -> None:
    class Counting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return xt

    model = Counting()
    with pytest.raises(fr.InceptionUnavailable, match="FD_MNIST-CNN"):
        evaluate_restoration(ColdDiffusion(model, GaussianNoise(3)), torch.zeros(4, 1, 32, 32), frechet="inception")
    assert model.calls == 0


def test_inception_fid_weights_path_problems(no_network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.zeros(4, 1, 32, 32)
    with pytest.raises(FileNotFoundError, match="no such file"):
        fr.inception_fid(x, x, weights_path=tmp_path / "missing.pth")
    weights = tmp_path / fr.INCEPTION_WEIGHTS_FILE
    torch.save({"w": torch.zeros(1)}, weights)
    monkeypatch.setattr(fr, "_torch_fidelity_available", lambda: False)
    with pytest.raises(fr.InceptionUnavailable, match="torch-fidelity package"):
        fr.inception_fid(x, x, weights_path=weights)
    # A pickle that is not a plain state dict is refused before torch-fidelity's unrestricted torch.load sees it.
    monkeypatch.setattr(fr, "_torch_fidelity_available", lambda: True)
    torch.save({"w": fr.FeatureStats()}, weights)
    with pytest.raises(ValueError, match="not a plain PyTorch state dict"):
        fr.inception_fid(x, x, weights_path=weights)


def test_inception_fid_runs_with_a_weights_file(no_network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end with *random* InceptionV3 weights in a file (the value is meaningless; the plumbing is not)."""
    tfi = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    with monkeypatch.context() as m:  # build the network without loading any weights
        m.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: None)
        m.setattr(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    weights = tmp_path / fr.INCEPTION_WEIGHTS_FILE
    torch.save(net.state_dict(), weights)
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 1, 32, 32, generator=g) * 2 - 1, torch.rand(3, 1, 32, 32, generator=g) * 2 - 1
    monkeypatch.setenv("COLDLIB_INCEPTION_WEIGHTS", str(weights))
    value = fr.inception_fid(a, b)
    assert np.isfinite(value) and value >= 0


def test_inception_fid_failed_download_is_explained(no_network, monkeypatch: pytest.MonkeyPatch) -> None:
    """With downloads allowed but no network, the error says how to get the weights (needs torch-fidelity)."""
    tfi = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setenv("COLDLIB_OFFLINE", "0")
    monkeypatch.setattr(tfi, "load_state_dict_from_url", unreachable)
    x = torch.zeros(4, 1, 32, 32)
    with pytest.raises(fr.InceptionUnavailable, match="downloading the InceptionV3 weights failed.*FD_MNIST-CNN"):
        fr.inception_fid(x, x)
