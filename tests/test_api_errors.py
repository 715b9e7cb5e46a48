"""Arrays given to the public API directly: wrong shapes, wrong counts, matrices that are not
rotations, complex or non-numeric data and wrong wedges are a TomoclassError naming the
parameter, not a message from numpy or the Rust core (issue 13 item 9)."""

from __future__ import annotations

import numpy as np
import pytest

import tomoclass as tc
from tomoclass.wedge import weights_stack

BOX = 8
VOLUME = np.zeros((BOX,) * 3, np.float32)
STACK = np.zeros((3, BOX, BOX, BOX), np.float32)
MIRROR = np.diag([1.0, 1.0, -1.0])
WEDGE = tc.tilt_range_wedge(-60, 60)


def _stack(wedges=(WEDGE,) * 3) -> tc.ParticleStack:
    rng = np.random.default_rng(0)
    volumes = rng.standard_normal((3, BOX, BOX, BOX)).astype(np.float32)
    return tc.ParticleStack(volumes, np.stack([np.eye(3)] * 3), np.zeros((3, 3)), list(wedges))


CASES = {
    "align: not a rotation": (lambda: tc.align(VOLUME, np.ones((3, 3))),
                              "rotations: every matrix must be a rotation"),
    "forward: a mirror": (lambda: tc.forward(VOLUME, MIRROR), "rotations: every matrix"),
    "align: rotation of 2x2": (lambda: tc.align(VOLUME, np.eye(2)),
                               r"rotations: \(3, 3\) or \(1, 3, 3\) matrices needed"),
    "align: too few rotations": (lambda: tc.align(STACK, np.stack([np.eye(3)] * 2)),
                                 r"rotations: \(3, 3\) or \(3, 3, 3\) matrices needed"),
    "align: shifts of 2": (lambda: tc.align(VOLUME, np.eye(3), np.zeros(2)),
                           r"shifts: \(3,\) or \(1, 3\) finite values needed"),
    "forward: complex volume": (lambda: tc.forward(VOLUME.astype(np.complex64), np.eye(3)),
                                "volumes: real numbers needed, got complex64"),
    "align: an image": (lambda: tc.align(VOLUME[0], np.eye(3)), "volumes: a volume"),
    "rfftn: complex volume": (lambda: tc.rfftn(VOLUME.astype(np.complex64)),
                              "volume: real numbers needed"),
    "irfftn: shape of 2": (lambda: tc.irfftn(np.zeros((4, 4, 3), np.complex64), (4, 4)),
                           "shape: three positive sizes"),
    "irfftn: spectrum of 2-D": (lambda: tc.irfftn(np.zeros((4, 3), np.complex64), (4, 4, 4)),
                                r"spectrum: shape \(4, 3\) does not fit"),
    "band_mask: shape of 2": (lambda: tc.band_mask((4, 4), 0, 2), "shape: three positive"),
    "bin_volume: complex": (lambda: tc.bin_volume(VOLUME.astype(np.complex64), 2),
                            "volume: real numbers needed"),
    "weights: not a rotation": (lambda: tc.weights(None, BOX, np.ones((3, 3))),
                                "rotation: every matrix must be a rotation"),
    "weights: rotation of 2x2": (lambda: tc.weights(None, BOX, np.eye(2)),
                                 r"rotation: \(3, 3\) or \(1, 3, 3\)"),
    "weights: not a wedge": (lambda: tc.weights("30", BOX), "wedges: '30' is not a wedge"),
    "weights: box of 8.5": (lambda: weights_stack([None], 8.5, np.eye(3)), "box: a whole"),
    "weights: wedges and rotations": (
        lambda: weights_stack([None] * 3, BOX, np.stack([np.eye(3)] * 2)),
        r"rotations: \(3, 3\) or \(3, 3, 3\) matrices needed",
    ),
    "average: a stack with a wrong wedge": (lambda: tc.class_averages(_stack(["30", WEDGE, WEDGE])),
                                            "wedges: '30' is not a wedge"),
    "average: labels of 2-D": (lambda: tc.class_averages(_stack(), labels=np.zeros((3, 1))),
                               r"labels: one per particle \(3\) needed, got shape \(3, 1\)"),
    "average: too few labels": (lambda: tc.class_averages(_stack(), labels=[0, 1]),
                                r"labels: one per particle \(3\) needed, got shape \(2,\)"),
    "cpca: nclass as text": (lambda: tc.cpca(np.eye(5), 2, "2"),
                             r"nclass must be within 2\.\.5 \(the particles\), got '2'"),
    "mco_exmx: 2.5 classes": (
        lambda: tc.mco_exmx(_stack(), tc.spherical_mask(BOX), 2.5, 3),
        r"classes must be within 2\.\.3 \(the particles\), got 2\.5",
    ),
    "mco_ac: classes as text": (
        lambda: tc.mco_ac(_stack(), tc.spherical_mask(BOX), "2", 0.1, 0.05, 3),
        "classes must be within 2..3",
    ),
    "adjusted_rand_index: empty": (lambda: tc.adjusted_rand_index([], []),
                                   "truth: one label per particle needed"),
    "adjusted_rand_index: 2-D": (lambda: tc.adjusted_rand_index(np.zeros((2, 2)), [0, 1]),
                                 r"truth: one label per particle needed, got shape \(2, 2\)"),
    "adjusted_rand_index: counts": (lambda: tc.adjusted_rand_index([0, 1, 1], [0, 1]),
                                    r"labels: one per particle of truth \(3\) needed, got 2"),
    "simulate: box of 17.5": (lambda: tc.simulate_particles(tc.SimulationConfig(box=17.5)),
                              "box: a whole number needed, got 17.5"),
    "simulate: 4.5 particles": (
        lambda: tc.simulate_particles(tc.SimulationConfig(n_particles=4.5)),
        "n_particles: a whole number needed",
    ),
    "simulate: a tilt range of one angle": (
        lambda: tc.simulate_particles(tc.SimulationConfig(tilt_ranges=[(-60, 60), (10,)])),
        r"tilt_ranges: \(min, max\) pairs of degrees needed",
    ),
    "spherical_mask: box of 8.5": (lambda: tc.spherical_mask(8.5), "box: a whole number"),
    "correlation_matrix: a bare array": (
        lambda: tc.correlation_matrix(STACK, tc.spherical_mask(BOX), 3),
        "particles: a ParticleList .* or a ParticleStack is needed, got ndarray",
    ),
    "class_averages: a bare array": (lambda: tc.class_averages(STACK),
                                     "particles: a ParticleList"),
    "correlation_matrix: out of another shape": (
        lambda: tc.correlation_matrix(_stack(), tc.spherical_mask(BOX), 3,
                                      out=np.empty((2, 2), np.float32)),
        r"out: an \(3, 3\) float32 array is needed, got \(2, 2\)",
    ),
    "ParticleStack: wedges None": (
        lambda: tc.ParticleStack(STACK, np.stack([np.eye(3)] * 3), np.zeros((3, 3)), None),
        r"wedges: a sequence of one per particle \(3\) is needed .*got NoneType",
    ),
    "ParticleStack: not rotations": (
        lambda: tc.ParticleStack(STACK, np.ones((3, 3, 3)), np.zeros((3, 3)), [None] * 3),
        "rotations: every matrix must be a rotation",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_arrays_name_the_parameter(case):
    call, message = CASES[case]
    with pytest.raises(tc.TomoclassError, match=message):
        call()
