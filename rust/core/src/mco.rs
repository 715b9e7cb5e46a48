//! Multiple correlation optimisation (MCO-EXMX) over spectral features.
//!
//! Class averages live in feature space: `A_k = Σ_{i∈k} W_i·F_i / max(Σ_{i∈k} W_i², floor·r_k)`
//! on the band, with the reach `r_k = Σ_{i∈k} max(W_i)²` (`n_k` for binary wedges, PyTom's
//! floor). A particle scores against a class seen through its own weight, `F_i` against
//! `W_i·A_k`: `s_ik = Σ h·W_i·Re(F_i A_k*) / sqrt(Σ h·|F_i|² · Σ h·W_i²·|A_k|²)` (for binary
//! wedges the correlation inside the particle's wedge), computed for all particles and
//! classes as two matrix products. Class sums are taken column by column in particle order,
//! so they do not depend on the number of threads.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Array3, ArrayView2, Zip};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;

use crate::error::{ensure, Result};
use crate::fft::Fft3;
use crate::interrupt;

/// Columns summed by one task: keeps the class sums' order fixed and the work cache-friendly.
const COLUMNS: usize = 64;

/// Class averages `(K, 2M)` as `[Re | Im]` from features `f` `(N, 2M)`, weights `w` `(N, M)`
/// and `labels` in `0..classes`, with PyTom's floor (see the module docs); also the class
/// sizes.
pub fn class_means(
    f: ArrayView2<f32>,
    w: ArrayView2<f32>,
    labels: &[usize],
    classes: usize,
    floor: f64,
) -> Result<(Array2<f32>, Vec<usize>)> {
    let (n, m) = w.dim();
    ensure(f.dim() == (n, 2 * m) && labels.len() == n, || {
        format!(
            "features {:?}, wedges {:?} and {} labels do not match",
            f.shape(),
            w.shape(),
            labels.len()
        )
    })?;
    ensure(labels.iter().all(|&l| l < classes), || {
        format!("a label is not below {classes}")
    })?;
    let mut counts = vec![0usize; classes];
    let mut reach = vec![0.0f64; classes];
    for (i, &l) in labels.iter().enumerate() {
        counts[l] += 1;
        let largest = w.row(i).iter().fold(0.0f32, |a, &b| a.max(b)) as f64;
        reach[l] += largest * largest;
    }
    let mut means = Array2::<f32>::zeros((classes, 2 * m));
    let starts: Vec<usize> = (0..m).step_by(COLUMNS).collect();
    let blocks: Vec<Array2<f32>> = starts
        .par_iter()
        .map(|&c0| {
            let c1 = (c0 + COLUMNS).min(m);
            let width = c1 - c0;
            let mut fw = vec![0.0f64; classes * 2 * width];
            let mut ws = vec![0.0f64; classes * width];
            for (i, &k) in labels.iter().enumerate() {
                for j in 0..width {
                    let wi = w[[i, c0 + j]] as f64;
                    fw[(k * 2) * width + j] += wi * f[[i, c0 + j]] as f64;
                    fw[(k * 2 + 1) * width + j] += wi * f[[i, m + c0 + j]] as f64;
                    ws[k * width + j] += wi * wi;
                }
            }
            Array2::from_shape_fn((classes, 2 * width), |(k, j)| {
                let (part, col) = (j / width, j % width);
                let lowest = (floor * reach[k]).max(f64::MIN_POSITIVE);
                (fw[(k * 2 + part) * width + col] / ws[k * width + col].max(lowest)) as f32
            })
        })
        .collect();
    for (&c0, block) in starts.iter().zip(&blocks) {
        let width = block.ncols() / 2;
        for k in 0..classes {
            for j in 0..width {
                means[[k, c0 + j]] = block[[k, j]];
                means[[k, m + c0 + j]] = block[[k, width + j]];
            }
        }
    }
    Ok((means, counts))
}

/// Scores `(N, K)` of every particle against every class average (see the module docs).
pub fn scores(
    f: ArrayView2<f32>,
    w: ArrayView2<f32>,
    herm: &[f32],
    means: ArrayView2<f32>,
) -> Result<Array2<f32>> {
    let (n, m) = w.dim();
    ensure(
        f.dim() == (n, 2 * m) && herm.len() == m && means.ncols() == 2 * m,
        || {
            format!(
                "features {:?}, wedges {:?}, {} weights and means {:?} do not match",
                f.shape(),
                w.shape(),
                herm.len(),
                means.shape()
            )
        },
    )?;
    let classes = means.nrows();
    // G = h·W·F ([Re | Im]), W² and the particle energies e_i = Σ h·|F|².
    let mut g = Array2::<f32>::zeros((n, 2 * m));
    let mut w2 = Array2::<f32>::zeros((n, m));
    let mut energy = Array1::<f64>::zeros(n);
    Zip::from(g.outer_iter_mut())
        .and(w2.outer_iter_mut())
        .and(&mut energy)
        .and(f.outer_iter())
        .and(w.outer_iter())
        .into_par_iter()
        .for_each(|(mut g, mut w2, e, f, w)| {
            let mut sum = 0.0f64;
            for k in 0..m {
                let hw = herm[k] * w[k];
                g[k] = hw * f[k];
                g[m + k] = hw * f[m + k];
                w2[k] = w[k] * w[k];
                sum += (herm[k] * (f[k] * f[k] + f[m + k] * f[m + k])) as f64;
            }
            *e = sum;
        });
    // Q_k = h·|A_k|², so that Σ h·W_i²·|A_k|² = (W²·Qᵀ)_ik.
    let q = Array2::from_shape_fn((classes, m), |(k, j)| {
        herm[j] * (means[[k, j]] * means[[k, j]] + means[[k, m + j]] * means[[k, m + j]])
    });
    let mut numerator = Array2::<f32>::zeros((n, classes));
    let mut reference = Array2::<f32>::zeros((n, classes));
    general_mat_mul(1.0, &g, &means.t(), 0.0, &mut numerator);
    general_mat_mul(1.0, &w2, &q.t(), 0.0, &mut reference);
    Zip::from(numerator.outer_iter_mut())
        .and(reference.outer_iter())
        .and(&energy)
        .into_par_iter()
        .for_each(|(mut s, r, &e)| {
            for (v, &rk) in s.iter_mut().zip(r.iter()) {
                let d = e * rk as f64;
                *v = if d > 0.0 {
                    (*v as f64 / d.sqrt()) as f32
                } else {
                    0.0
                };
            }
        });
    Ok(numerator)
}

/// Scores with translation tolerance: for every particle and class the peak over shifts
/// `|t| ≤ max_shift` (voxels) of the constrained correlation, found by an inverse FFT of
/// `W_i·F_i·A_k*` scattered from the band (flat half-grid indices `flat`) to the half grid of
/// an `m³` box. Also returns the best shift `(x, y, z)` per particle and class. The
/// normalisation is that of [`scores`], which a shift does not change. A best shift `t`
/// means the particle matches the average moved by `+t`.
pub fn shift_scores(
    f: ArrayView2<f32>,
    w: ArrayView2<f32>,
    herm: &[f32],
    flat: &[usize],
    m: usize,
    means: ArrayView2<f32>,
    max_shift: f64,
) -> Result<(Array2<f32>, Array3<i32>)> {
    let (n, len) = w.dim();
    let classes = means.nrows();
    ensure(
        flat.len() == len && f.dim() == (n, 2 * len) && means.ncols() == 2 * len,
        || {
            format!(
                "band of {} voxels does not fit features {:?}",
                flat.len(),
                f.shape()
            )
        },
    )?;
    let fft = Fft3::new([m; 3])?;
    let half = fft.half_shape();
    ensure(flat.iter().all(|&i| i < half.iter().product()), || {
        "band index beyond the box".into()
    })?;
    // Candidate shifts: voxel offsets within the radius, with their flat indices.
    let r = max_shift.max(0.0);
    let reach = r.floor() as i64;
    let mut offsets = vec![];
    for z in -reach..=reach {
        for y in -reach..=reach {
            for x in -reach..=reach {
                if ((x * x + y * y + z * z) as f64) <= r * r + 1e-9 {
                    let wrap = |v: i64| v.rem_euclid(m as i64) as usize;
                    offsets.push((
                        [x as i32, y as i32, z as i32],
                        (wrap(z) * m + wrap(y)) * m + wrap(x),
                    ));
                }
            }
        }
    }
    let mut out = Array2::<f32>::zeros((n, classes));
    let mut best = Array3::<i32>::zeros((n, classes, 3));
    let volume = (m * m * m) as f64;
    Zip::from(out.outer_iter_mut())
        .and(best.outer_iter_mut())
        .and(f.outer_iter())
        .and(w.outer_iter())
        .into_par_iter()
        .try_for_each_init(
            || {
                (
                    fft.scratch(),
                    Array3::<Complex32>::zeros(half),
                    Array3::<f32>::zeros((m, m, m)),
                )
            },
            |(scratch, spec, corr), (mut s_row, mut b_row, f, w)| {
                interrupt::check()?;
                let energy: f64 = (0..len)
                    .map(|j| (herm[j] * (f[j] * f[j] + f[len + j] * f[len + j])) as f64)
                    .sum();
                for k in 0..classes {
                    let a = means.row(k);
                    let reference: f64 = (0..len)
                        .map(|j| {
                            let power = a[j] * a[j] + a[len + j] * a[len + j];
                            (herm[j] * w[j] * w[j] * power) as f64
                        })
                        .sum();
                    spec.fill(Default::default());
                    let data = spec.as_slice_mut().expect("contiguous");
                    for (j, &idx) in flat.iter().enumerate() {
                        let fi = Complex32::new(f[j], f[len + j]);
                        let ak = Complex32::new(a[j], -a[len + j]);
                        data[idx] = fi * ak * w[j];
                    }
                    fft.inverse(spec.view_mut(), corr.view_mut(), scratch)
                        .expect("shapes checked");
                    let values = corr.as_slice().expect("contiguous");
                    let (shift, peak) = offsets
                        .iter()
                        .map(|&(t, idx)| (t, values[idx] as f64 * volume))
                        .fold(([0, 0, 0], f64::NEG_INFINITY), |b, c| {
                            if c.1 > b.1 {
                                c
                            } else {
                                b
                            }
                        });
                    let d = energy * reference;
                    s_row[k] = if d > 0.0 {
                        (peak / d.sqrt()) as f32
                    } else {
                        0.0
                    };
                    for a in 0..3 {
                        b_row[[k, a]] = shift[a];
                    }
                }
                Ok(())
            },
        )?;
    Ok((out, best))
}

/// How an annealed jump to a worse class is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    /// With probability `exp(−(s_current − s_k) / T)`.
    Metropolis,
    /// When `s_current − s_k < T`.
    Threshold,
}

/// One accepted annealed jump: particle, from class, to class, and the score given up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jump {
    pub particle: usize,
    pub from: usize,
    pub to: usize,
    pub loss: f32,
}

/// Annealed reassignment of round `round`: every particle proposes a random other class
/// (counter stream `(seed, 2·round + 1, particle)`) and moves there if `criterion` accepts
/// the loss at temperature `temperature` (acceptance draws from `(seed, 2·round + 2, …)`).
/// Returns the new labels and the accepted jumps in particle order.
pub fn anneal(
    scores: ArrayView2<f32>,
    labels: &[usize],
    temperature: f64,
    criterion: Criterion,
    seed: u64,
    round: u64,
) -> Result<(Vec<usize>, Vec<Jump>)> {
    let (n, classes) = scores.dim();
    ensure(
        labels.len() == n && labels.iter().all(|&l| l < classes),
        || {
            format!(
                "{} labels for scores of shape {:?}",
                labels.len(),
                scores.shape()
            )
        },
    )?;
    ensure(classes >= 2 && temperature >= 0.0, || {
        format!(
            "annealing needs ≥ 2 classes and a temperature ≥ 0, got {classes} and {temperature}"
        )
    })?;
    let jumps: Vec<Option<Jump>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let from = labels[i];
            let draw = uniform(seed, 2 * round + 1, i as u64) * (classes - 1) as f64;
            let pick = (draw as usize).min(classes - 2);
            let to = if pick >= from { pick + 1 } else { pick };
            let loss = scores[[i, from]] - scores[[i, to]];
            let accept = match criterion {
                Criterion::Threshold => (loss as f64) < temperature,
                Criterion::Metropolis => {
                    loss <= 0.0
                        || (temperature > 0.0
                            && uniform(seed, 2 * round + 2, i as u64)
                                < (-(loss as f64) / temperature).exp())
                }
            };
            accept.then_some(Jump {
                particle: i,
                from,
                to,
                loss,
            })
        })
        .collect();
    let mut new = labels.to_vec();
    let accepted: Vec<Jump> = jumps.into_iter().flatten().collect();
    for j in &accepted {
        new[j.particle] = j.to;
    }
    Ok((new, accepted))
}

/// A uniform number in `[0, 1)` from the counter `(seed, round, index)` (SplitMix64 mixing):
/// the same value whatever the thread or rank that asks for it.
pub fn uniform(seed: u64, round: u64, index: u64) -> f64 {
    let mut x = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(round.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(index.wrapping_mul(0x94D0_49BB_1331_11EB));
    for _ in 0..2 {
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn a_particle_scores_one_against_a_class_of_itself() {
        let m = 30;
        let f = Array::from_shape_fn((3, 2 * m), |(i, k)| ((i * 17 + k * 5) as f32 * 0.31).sin());
        let w = Array2::ones((3, m));
        let herm = vec![2.0; m];
        let (means, counts) = class_means(f.view(), w.view(), &[0, 1, 1], 2, 0.05).unwrap();
        assert_eq!(counts, vec![1, 2]);
        let s = scores(f.view(), w.view(), &herm, means.view()).unwrap();
        assert!((s[[0, 0]] - 1.0).abs() < 1e-5);
        assert!(s[[0, 1]] < 0.9);
    }

    #[test]
    fn consistent_weighted_data_scores_one_against_its_own_class() {
        // F = W·S with real weights W in 0.5..1: the class mean of one particle is S, and the
        // particle scores 1 against it (and less against another class).
        let m = 40;
        let s = Array::from_shape_fn((2, 2 * m), |(i, k)| ((i * 13 + k * 3) as f32 * 0.7).cos());
        let w = Array::from_shape_fn((2, m), |(i, k)| {
            0.5 + 0.5 * ((i + k) as f32 * 0.9).sin().abs()
        });
        let f = Array::from_shape_fn((2, 2 * m), |(i, k)| w[[i, k % m]] * s[[i, k]]);
        let herm = vec![2.0; m];
        let (means, _) = class_means(f.view(), w.view(), &[0, 1], 2, 0.05).unwrap();
        for k in 0..2 * m {
            assert!((means[[0, k]] - s[[0, k]]).abs() < 1e-5);
        }
        let scores = scores(f.view(), w.view(), &herm, means.view()).unwrap();
        assert!((scores[[0, 0]] - 1.0).abs() < 1e-5, "{}", scores[[0, 0]]);
        assert!((scores[[1, 1]] - 1.0).abs() < 1e-5);
        assert!(scores[[0, 1]] < 0.9);
    }

    #[test]
    fn annealing_at_zero_threshold_keeps_better_assignments_and_proposes_other_classes() {
        let scores = ndarray::array![[0.9f32, 0.1, 0.2], [0.1, 0.8, 0.3], [0.5, 0.5, 0.5]];
        let (same, jumps) =
            anneal(scores.view(), &[0, 1, 2], 0.0, Criterion::Threshold, 3, 1).unwrap();
        assert_eq!(&same[..2], &[0, 1]);
        assert!(jumps
            .iter()
            .all(|j| j.to != j.from && j.loss < 0.0 + f32::EPSILON));
        let (hot, jumps) =
            anneal(scores.view(), &[0, 1, 2], 10.0, Criterion::Threshold, 3, 1).unwrap();
        assert!(hot.iter().zip([0, 1, 2]).all(|(&a, b)| a != b));
        assert_eq!(jumps.len(), 3);
    }

    #[test]
    fn a_shifted_copy_is_found_at_its_shift() {
        use crate::features::Band;
        let m = 16;
        let band = Band::new(m, 1.0, 6.0);
        let len = band.len();
        let shift = [2.0, -1.0, 1.0];
        // Class average: a smooth spectrum; the particle: the same, moved by `shift`.
        let mut a = Array2::<f32>::zeros((1, 2 * len));
        let mut f = Array2::<f32>::zeros((1, 2 * len));
        for (j, k) in band.freqs.iter().enumerate() {
            let amp = (-(k[0] * k[0] + k[1] * k[1] + k[2] * k[2]) / 20.0).exp() as f32;
            let base = Complex32::from_polar(amp, (k[0] * 1.3 + k[1] * 0.7 - k[2] * 0.4) as f32);
            let phase =
                -2.0 * std::f64::consts::PI * (k[0] * shift[0] + k[1] * shift[1] + k[2] * shift[2])
                    / m as f64;
            let moved = base * Complex32::from_polar(1.0, phase as f32);
            a[[0, j]] = base.re;
            a[[0, len + j]] = base.im;
            f[[0, j]] = moved.re;
            f[[0, len + j]] = moved.im;
        }
        let w = Array2::ones((1, len));
        let (s0, _) =
            shift_scores(f.view(), w.view(), &band.herm, &band.flat, m, a.view(), 0.0).unwrap();
        let (s3, t) =
            shift_scores(f.view(), w.view(), &band.herm, &band.flat, m, a.view(), 3.0).unwrap();
        assert!(s0[[0, 0]] < 0.9);
        assert!((s3[[0, 0]] - 1.0).abs() < 1e-4, "{}", s3[[0, 0]]);
        assert_eq!([t[[0, 0, 0]], t[[0, 0, 1]], t[[0, 0, 2]]], [2, -1, 1]);
        let plain = scores(f.view(), w.view(), &band.herm, a.view()).unwrap();
        assert!((plain[[0, 0]] - s0[[0, 0]]).abs() < 1e-4);
    }

    #[test]
    fn uniform_is_in_range_and_depends_on_every_key() {
        let a = uniform(1, 2, 3);
        assert!((0.0..1.0).contains(&a));
        assert_ne!(a, uniform(1, 2, 4));
        assert_ne!(a, uniform(1, 3, 3));
        assert_ne!(a, uniform(2, 2, 3));
        let mean: f64 = (0..10_000).map(|i| uniform(7, 0, i)).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02);
    }
}
