"""models.datasets: digits split sizes and stratification, synthetic JSC properties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

import models
from models.datasets import digits, jsc_synthetic, load_dataset


def test_digits_split_sizes_ranges_and_stratification():
    ds = digits(flat=True)
    assert ds.x_train.shape == (1437, 64) and ds.x_test.shape == (360, 64)
    assert ds.x_train.dtype == np.float32 and ds.y_test.dtype == np.int64
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert ds.num_classes == 10
    # stratified: every class within one sample of 20% of its total count
    raw = load_digits()
    totals = np.bincount(raw.target, minlength=10)
    assert np.all(np.abs(np.bincount(ds.y_test, minlength=10) - 0.2 * totals) <= 1)
    # the split is a partition of the original images (pixels / 16)
    all_x = np.concatenate([ds.x_train, ds.x_test]) * 16.0
    assert sorted(map(bytes, all_x.astype(np.uint8))) == sorted(
        map(bytes, raw.data.astype(np.uint8))
    )


def test_digits_image_layout_equals_flat():
    flat, img = digits(flat=True), digits(flat=False)
    assert img.x_train.shape == (1437, 1, 8, 8) and img.x_test.shape == (360, 1, 8, 8)
    np.testing.assert_array_equal(img.x_test.reshape(360, 64), flat.x_test)
    np.testing.assert_array_equal(img.y_test, flat.y_test)


def test_datasets_cached_and_read_only():
    a = digits(flat=True)
    assert digits(flat=True) is a and jsc_synthetic(0) is jsc_synthetic(0)
    with pytest.raises(ValueError):
        a.x_train[0, 0] = 5.0


def test_jsc_synthetic_properties_and_seed():
    ds = jsc_synthetic(0)
    assert ds.x_train.shape == (8000, 16) and ds.x_test.shape == (2000, 16)
    assert ds.x_train.dtype == np.float32
    assert np.bincount(ds.y_test).tolist() == [400] * 5
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-4)
    other = jsc_synthetic(1)
    assert not np.array_equal(other.x_train, ds.x_train)
    # not trivially separable, not noise: nearest class mean gets well above chance, below 100%
    means = np.stack([ds.x_train[ds.y_train == c].mean(axis=0) for c in range(5)])
    pred = np.argmin(((ds.x_test[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert 0.4 < np.mean(pred == ds.y_test) < 0.95


def test_load_dataset_by_name_and_error():
    assert load_dataset("digits-image") is digits(flat=False)
    assert models.get("jsc-mlp").dataset() is jsc_synthetic(0)
    with pytest.raises(ValueError, match="known data sets: digits-flat"):
        load_dataset("mnist")
