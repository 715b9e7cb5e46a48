"""MCO-AC's annealed reassignment (``anneal`` in ``rust/core/src/mco.rs``, called through
``_core.mco_anneal``) against theory: a jump to a worse class is accepted with probability
``exp(−Δ/T)`` (Metropolis) or when ``Δ < T`` (threshold), one to a better class always; and a
start where EXMX provably stays in a local optimum that MCO-AC leaves."""

from __future__ import annotations

import numpy as np
import pytest

from tomoclass import _core
from tomoclass.mco import ac_rounds, exmx_iterations, total_score


def two_class_scores(loss: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Scores ``(N, 2)``: each particle gives up ``loss`` by leaving its class ``labels``."""
    own, other = np.full(len(loss), 0.9), 0.9 - loss
    return np.where(labels[:, None] == 0, np.c_[own, other], np.c_[other, own]).astype(np.float32)


def test_metropolis_accepts_a_loss_with_probability_exp_of_minus_loss_over_t():
    """Of 2000 particles whose only other class scores Δ lower, the number that jump is
    2000·exp(−Δ/T) within 4.5 binomial sigmas for Δ/T = 0.25, 1, 2.5 (T = 0.1, so T ≠ 1 and a
    misplaced T shows); jumps to a better or equal class are all taken, in both directions,
    and each records the score given up."""
    t, per = 0.1, 2000
    ratios = np.array([0.25, 1.0, 2.5])
    loss = np.concatenate([np.repeat(ratios * t, per), [-0.05] * 100, [0.0] * 100])
    labels = np.arange(len(loss)) % 2
    moved, jumps = _core.mco_anneal(two_class_scores(loss, labels), labels.tolist(), t,
                                    "metropolis", 11, 3)  # fmt: skip
    jumped = np.asarray(moved) != labels
    for k, ratio in enumerate(ratios):
        count, p = int(jumped[k * per : (k + 1) * per].sum()), np.exp(-ratio)
        sigma = np.sqrt(per * p * (1 - p))
        assert abs(count - per * p) <= 4.5 * sigma, (ratio, count, per * p)
    assert jumped[3 * per :].all()  # better or equal: always
    assert [j[0] for j in jumps] == np.flatnonzero(jumped).tolist()
    assert all(j[1] == labels[j[0]] and j[2] == 1 - labels[j[0]] for j in jumps)
    np.testing.assert_allclose([j[3] for j in jumps], loss[jumped], atol=1e-6)


def test_threshold_accepts_exactly_the_losses_below_t_and_zero_temperature_none():
    """Threshold: a jump is taken iff Δ < T. Metropolis at T = 0: only Δ ≤ 0."""
    t = 0.2
    loss = np.repeat([0.5 * t, 0.99 * t, 1.01 * t, 2 * t, -0.1], 50)
    labels = np.zeros(len(loss), int)
    scores = two_class_scores(loss, labels)
    moved, _ = _core.mco_anneal(scores, labels.tolist(), t, "threshold", 5, 1)
    np.testing.assert_array_equal(np.asarray(moved) == 1, loss < t)
    cold, _ = _core.mco_anneal(scores, labels.tolist(), 0.0, "metropolis", 5, 1)
    np.testing.assert_array_equal(np.asarray(cold) == 1, loss <= 0)


def test_proposals_are_uniform_over_the_other_classes():
    """With 4 equal scores every particle jumps, never to its own class, and each of the
    three others is proposed a third of the time (within 4.5 sigmas)."""
    n = 3000
    labels = np.arange(n) % 4
    moved, _ = _core.mco_anneal(np.full((n, 4), 0.5, np.float32), labels.tolist(), 0.1,
                                "metropolis", 2, 7)  # fmt: skip
    moved = np.asarray(moved)
    assert np.all(moved != labels)
    step = (moved - labels) % 4  # 1, 2 or 3 classes on
    counts = np.bincount(step, minlength=4)[1:]
    assert np.all(np.abs(counts - n / 3) <= 4.5 * np.sqrt(n * (1 / 3) * (2 / 3))), counts


def stuck_case():
    """Features of three groups of 12: ``a``; ``b`` with cos(a, b) = 0.5; ``c`` orthogonal to
    both (plus a little noise); unit weights. In 2 classes, {a} | {b, c} is a fixed point of
    EXMX (b scores ≈ 0.71 in its class, 0.5 against a's) but {a, b} | {c} scores more in total
    (b and a ≈ 0.87 each, c 1)."""
    m, n = 32, 12
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((2 * m, 3)))
    a, c, d = q.T
    b = 0.5 * a + np.sqrt(0.75) * d
    groups = np.repeat([0, 1, 2], n)
    f = (np.stack([a, b, c])[groups] + 0.05 * rng.standard_normal((3 * n, 2 * m))).astype(
        np.float32
    )
    return f, np.ones((3 * n, m), np.float32), np.ones(m, np.float32), groups


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_annealing_leaves_a_local_optimum_where_exmx_stays(seed):
    """From {a} | {b, c} EXMX moves no particle although {a, b} | {c} scores 3 more in total;
    MCO-AC from the same start reaches that optimum (it must accept b's jumps to a's class,
    which lose ≈ 0.21, at effective temperatures 0.1–0.8)."""
    f, w, herm, groups = stuck_case()
    start = np.where(groups == 0, 0, 1)
    best = total_score(f, w, herm, np.where(groups == 2, 1, 0), 2)
    exmx = exmx_iterations(f, w, herm, start, 2, 20, 0.0)
    assert exmx.trace[0]["changes"] == 0 and np.array_equal(exmx.labels, start)
    stuck = total_score(f, w, herm, exmx.labels, 2)
    assert stuck < best - 3
    ac, swaps = ac_rounds(f, w, herm, start, 2, 2.0, 0.2, local_search=1, seed=seed)
    assert total_score(f, w, herm, ac.labels, 2) == pytest.approx(best, abs=1e-4)
    assert any(loss > 0 for *_, loss in swaps)  # it did accept worse classes


@pytest.mark.parametrize(("temperature", "spread"), [("sigma", True), ("annealing", False)])
def test_effective_temperature_is_t_times_the_score_spread_for_sigma(temperature, spread):
    """SigmaTemperature scales T by the standard deviation of all scores of the round;
    AnnealingTemperature uses T as it is."""
    from tomoclass.mco import class_scores

    f, w, herm, groups = stuck_case()
    start = np.where(groups == 0, 0, 1)
    ac, _ = ac_rounds(f, w, herm, start, 2, 2.0, 0.5, local_search=1, seed=0,
                      temperature=temperature)  # fmt: skip
    first = ac.trace[0]
    local = exmx_iterations(f, w, herm, start, 2, 1, 0.05)
    std = float(class_scores(f, w, herm, local.labels, 2).std())
    assert std != pytest.approx(1.0)  # the two rules differ on this case
    assert first["effective_temperature"] == pytest.approx(2.0 * (std if spread else 1.0))
