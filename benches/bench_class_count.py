"""Benchmark ``classify -n auto``: does it find the number of conformations?

Simulated sets (the simulator's PyTom layout, 400 particles, box 32, lowpass 8, spherical
mask, four tilt ranges) of 2 to 5 conformations at each SNR of ``--snr``, ``--seeds`` each.
Prints, per set, the count chosen, the half-set agreement of every count tried (2 to 6), the
sentence ``classify`` prints, the ARI of its classes against the truth beside the
leave-one-out limit (each particle scored against the true classes' averages without it:
the best ARI the data allow at the true count), and the seconds taken (2 threads unless
RAYON_NUM_THREADS says otherwise); then how many sets got the true count.

Usage: python benches/bench_class_count.py [--seeds 2] [--snr 0.3,0.1,0.03]
"""

from __future__ import annotations

import argparse
import time

from tomoclass.classify import classify
from tomoclass.features import Preprocessing
from tomoclass.mask import spherical_mask
from tomoclass.mco import leave_one_out_scores
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, simulate_particles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--snr", default="0.3,0.1,0.03")
    args = parser.parse_args()
    right = total = 0
    print("| conformations | SNR | seed | chosen | agreement for 2..6 classes | said | ARI | "
          "limit | seconds |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for k in (2, 3, 4, 5):
        for snr in (float(v) for v in args.snr.split(",")):
            for seed in range(args.seeds):
                sim = simulate_particles(SimulationConfig(n_particles=400, n_classes=k, snr=snr,
                                                          seed=seed))  # fmt: skip
                prep = Preprocessing.for_band(sim.particle_stack(), spherical_mask(32), 8)
                started = time.perf_counter()
                result = classify(prep, None, "auto", None, seed=seed)
                seconds = time.perf_counter() - started
                count = result.class_count
                right, total = right + (count.chosen == k), total + 1
                agreement = " ".join(f"{t['half_set_agreement']:.2f}" for t in count.tried)
                feats = prep.features()
                limit = leave_one_out_scores(feats.f, feats.w, prep.band.herm, sim.labels, k)
                best = adjusted_rand_index(sim.labels, limit.argmax(axis=1))
                found = adjusted_rand_index(sim.labels, result.labels)
                print(f"| {k} | {snr} | {seed} | {count.chosen} | {agreement} | "
                      f"{count.sureness} | {found:.2f} | {best:.2f} | {seconds:.1f} |",
                      flush=True)  # fmt: skip
    print(f"\nthe true count in {right} of {total} sets")


if __name__ == "__main__":
    main()
