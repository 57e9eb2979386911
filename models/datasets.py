"""Data sets for the zoo: scikit-learn 8x8 digits and a synthetic jet-tagging set.

Both are deterministic (fixed seeds), cached in-process and returned as
read-only numpy arrays: float32 inputs already shaped for the model
(including channel dims) and int64 labels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
JSC_FEATURES = 16
JSC_CLASSES = 5
JSC_SAMPLES_PER_CLASS = 2000
JSC_TEST_FRACTION = 0.2
JSC_MEAN_SPREAD = 1.6  # std of the class-mean latents: sets the class overlap


@dataclass(frozen=True)
class Dataset:
    """A train/test split: ``x_*`` float32 shaped for the model, ``y_*`` int64 class ids."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    out = []
    for a in arrays:
        a = np.ascontiguousarray(a)
        a.setflags(write=False)
        out.append(a)
    return tuple(out)


@functools.cache
def digits(flat: bool) -> Dataset:
    """scikit-learn ``load_digits`` (1797 images), pixels / 16 into [0, 1].

    Stratified 80/20 split with ``random_state=0`` -> 1437 train, 360 test.
    ``flat=True`` gives inputs ``(N, 64)``; ``flat=False`` gives ``(N, 1, 8, 8)``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=y
    )
    if not flat:
        x_tr = x_tr.reshape(-1, 1, 8, 8)
        x_te = x_te.reshape(-1, 1, 8, 8)
    x_tr, y_tr, x_te, y_te = _frozen(x_tr, y_tr, x_te, y_te)
    return Dataset(x_tr, y_tr, x_te, y_te, name="digits-flat" if flat else "digits-image")


def _jsc_raw(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class-conditional latent Gaussians pushed through a fixed nonlinear mixing.

    Each class has its own 6-D latent mean and covariance; the 16 observed
    features mimic jet-substructure observables: positive, skewed "mass" and
    "pT" like features (exp / softplus of latents), ratios, products and noisy
    linear mixtures shared by all classes, so the classes overlap and the task
    is not linearly separable.
    """
    rng = np.random.default_rng(seed)
    latent = 6
    means = rng.normal(0.0, JSC_MEAN_SPREAD, size=(JSC_CLASSES, latent))
    chols = []
    for _ in range(JSC_CLASSES):
        a = rng.normal(0.0, 0.5, size=(latent, latent))
        chols.append(np.linalg.cholesky(a @ a.T + 0.6 * np.eye(latent)))
    mix = rng.normal(0.0, 1.0, size=(latent, 8))  # shared linear observables
    zs, ys = [], []
    for c in range(JSC_CLASSES):
        z = means[c] + rng.normal(size=(JSC_SAMPLES_PER_CLASS, latent)) @ chols[c].T
        zs.append(z)
        ys.append(np.full(JSC_SAMPLES_PER_CLASS, c, dtype=np.int64))
    z = np.concatenate(zs)
    y = np.concatenate(ys)
    softplus = np.logaddexp(0.0, z)
    nonlin = np.stack(
        [
            np.exp(0.5 * z[:, 0]),  # mass-like, log-normal
            softplus[:, 1],  # pT-like, positive
            softplus[:, 2] / (1.0 + softplus[:, 1]),  # ratio (tau21-like)
            np.tanh(z[:, 3] * z[:, 4]),  # interaction
            z[:, 5] ** 2,  # energy-like, chi-square
            np.sin(z[:, 0] + z[:, 2]),  # angular
            z[:, 1] * softplus[:, 3],  # product
            np.sqrt(softplus[:, 4] + softplus[:, 5]),  # multiplicity-like
        ],
        axis=1,
    )
    linear = z @ mix
    x = np.concatenate([nonlin, linear], axis=1)
    x = x + rng.normal(0.0, 0.3, size=x.shape)  # detector noise
    return x, y


@functools.cache
def jsc_synthetic(seed: int = 0) -> Dataset:
    """Synthetic jet-substructure-like data: 16 features, 5 classes, 10000 samples.

    Deterministic in ``seed``. Stratified 80/20 split (8000 train, 2000 test);
    features standardised with the *training* mean and standard deviation.
    """
    from sklearn.model_selection import train_test_split

    x, y = _jsc_raw(int(seed))
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=JSC_TEST_FRACTION, random_state=int(seed), stratify=y
    )
    mu = x_tr.mean(axis=0)
    sd = x_tr.std(axis=0)
    x_tr = ((x_tr - mu) / sd).astype(np.float32)
    x_te = ((x_te - mu) / sd).astype(np.float32)
    x_tr, y_tr, x_te, y_te = _frozen(x_tr, y_tr, x_te, y_te)
    return Dataset(x_tr, y_tr, x_te, y_te, name=f"jsc-synthetic-{int(seed)}")


DATASETS = {
    "digits-flat": lambda: digits(flat=True),
    "digits-image": lambda: digits(flat=False),
    "jsc-synthetic": lambda: jsc_synthetic(0),
}


def load_dataset(name: str) -> Dataset:
    """Data set by name (``digits-flat``, ``digits-image``, ``jsc-synthetic``)."""
    try:
        return DATASETS[name]()
    except KeyError:
        raise ValueError(
            f"unknown data set {name!r}; known data sets: {', '.join(sorted(DATASETS))}"
        ) from None
