"""Binary wedges give exactly the results tomoclass gave before per-particle sampling weights
existed: ``tests/data/binary_reference.npz`` holds 16 simulated particles (box 16, seed 5) with
single-, asymmetric, cut-off, x-axis and double-tilt wedges and one without a wedge, and the
outputs of commit b093f05 (the last one with the wedge-only model) on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tomoclass.average import class_averages
from tomoclass.ccc import correlation_matrix
from tomoclass.features import ParticleStack, Preprocessing
from tomoclass.geometry import Rotation
from tomoclass.mask import spherical_mask
from tomoclass.mco import ShiftSearch, class_scores
from tomoclass.wedge import DoubleTiltWedge, SingleTiltWedge

X_TILT = Rotation(90.0, 0.0, 0.0)
WEDGES = [
    SingleTiltWedge(30, 30),
    SingleTiltWedge(30, 40),
    SingleTiltWedge(25, 35, cutoff_radius=6),
    SingleTiltWedge(30, 30, tilt_axis_rotation=X_TILT),
    DoubleTiltWedge(SingleTiltWedge(30, 30), SingleTiltWedge(35, 35, tilt_axis_rotation=X_TILT)),
    None,
]


@pytest.fixture(scope="module")
def reference():
    with np.load(Path(__file__).parent / "data" / "binary_reference.npz") as data:
        return dict(data)


@pytest.fixture(scope="module")
def stack(reference) -> ParticleStack:
    n = len(reference["volumes"])
    wedges = [WEDGES[i % len(WEDGES)] for i in range(n)]
    return ParticleStack(reference["volumes"], reference["rotations"], reference["shifts"], wedges)


def test_ccc_matrices_are_unchanged(reference, stack):
    mask = spherical_mask(16)

    # The features are bit-identical (test below); the matrix products moved from
    # matrixmultiply to faer's GEMM kernels, which sum in another order: float32 rounding.
    def same(a, b):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)

    same(correlation_matrix(stack, mask, 5), reference["ccc_fourier"])
    same(correlation_matrix(stack, mask, 3, binning=2), reference["ccc_fourier_bin2"])
    assert np.array_equal(correlation_matrix(stack, mask, 5, mode="real"), reference["ccc_real"])


def test_mco_scores_are_unchanged(reference, stack):
    feats = Preprocessing.for_band(stack, spherical_mask(16), 5).features()
    band = feats.band
    assert np.array_equal(feats.f, reference["features_f"])
    assert np.array_equal(feats.w, reference["features_w"])
    labels = reference["labels"]
    scores = class_scores(feats.f, feats.w, band.herm, labels, 3)
    assert np.array_equal(scores, reference["scores"])
    shifted = class_scores(feats.f, feats.w, band.herm, labels, 3,
                           shift=ShiftSearch(1.5, band.flat, band.box))  # fmt: skip
    assert np.array_equal(shifted, reference["shift_scores"])


def test_class_averages_are_unchanged(reference, stack):
    averages = class_averages(stack, labels=reference["labels"].tolist(), lowpass=6)
    assert np.array_equal(np.stack([a.volume for a in averages]), reference["averages"])
    assert np.array_equal(np.stack([a.wedge_sum for a in averages]), reference["wedge_sums"])
