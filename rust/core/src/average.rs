//! Weighted class averages (PyTom's average, generalised to sampling weights):
//! `A = irFFT( Σ W_i·F_i / max(Σ W_i², floor·Σ max(W_i)²) )`, low-passed to the band.
//!
//! `F_i` is the spectrum of aligned particle `i` (binned, aligned, no mask; `F_i ≈ W_i·S`)
//! and `W_i` its sampling weight seen from the aligned frame. The floor is a fraction of the
//! largest weight sum the class could reach (`floor·n` for binary wedges, as PyTom). Sums are
//! taken in f64 over fixed blocks of particles that are then added in block order, so the
//! result does not depend on the number of threads.

use ndarray::{Array3, Array4, ArrayView3, ArrayView4, ArrayViewMut3, Axis, Zip};
use rayon::prelude::*;
use rustfft::num_complex::{Complex32, Complex64};

use crate::error::{ensure, Result};
use crate::features::{Geometry, Preprocess};
use crate::fft::Fft3;
use crate::fourier::for_each_frequency;
use crate::interrupt;
use crate::wedge::ParticleWeight;

/// Particles summed one after the other before blocks are combined (in order).
const BLOCK: usize = 8;

/// Per-class sums `Σ W_i·F_i` and `Σ W_i²` on the half grid, the class sizes and each class's
/// reach `Σ max(W_i)²` (the largest weight sum a voxel could have).
pub struct ClassSums {
    pub fw: Array4<Complex64>,
    pub w: Array4<f64>,
    pub counts: Vec<usize>,
    pub reach: Vec<f64>,
}

impl ClassSums {
    /// Zero sums for `classes` classes on a half grid of `half` shape.
    pub fn zeros(classes: usize, half: [usize; 3]) -> Self {
        let shape = (classes, half[0], half[1], half[2]);
        Self {
            fw: Array4::zeros(shape),
            w: Array4::zeros(shape),
            counts: vec![0; classes],
            reach: vec![0.0; classes],
        }
    }

    /// Add `other` (same shape) to these sums.
    pub fn add(&mut self, other: &ClassSums) {
        self.fw += &other.fw;
        self.w += &other.w;
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        for (a, b) in self.reach.iter_mut().zip(&other.reach) {
            *a += b;
        }
    }
}

/// Sums of the particles of `stack` by class (`labels[i] < classes`), preprocessed by `pre`
/// (whose mask should be all ones for a plain average). Parallel over blocks of particles.
pub fn class_sums(
    pre: &Preprocess,
    stack: ArrayView4<f32>,
    geometry: &[Geometry],
    labels: &[usize],
    classes: usize,
) -> Result<ClassSums> {
    pre.check(&stack, geometry)?;
    ensure(
        labels.len() == geometry.len() && labels.iter().all(|&l| l < classes),
        || {
            format!(
                "{} labels for {} particles, or a label ≥ {classes}",
                labels.len(),
                geometry.len()
            )
        },
    )?;
    let m = pre.binned_size();
    let half = [m, m, m / 2 + 1];
    let blocks: Vec<Result<ClassSums>> = (0..geometry.len().div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let mut sums = ClassSums::zeros(classes, half);
            let mut work = pre.work();
            for i in b * BLOCK..((b + 1) * BLOCK).min(geometry.len()) {
                interrupt::check()?;
                let geo = &geometry[i];
                pre.spectrum(stack.index_axis(Axis(0), i), geo, &mut work)?;
                let particle = ParticleWeight::new(m, &geo.sampling, &geo.rotation)?;
                let k = labels[i];
                let mut fw = sums.fw.index_axis_mut(Axis(0), k);
                let mut w = sums.w.index_axis_mut(Axis(0), k);
                let spectrum = &work.spectrum;
                let mut largest = 0.0f64;
                for_each_frequency([m; 3], |[kz, ky, kx], idx| {
                    let weight = particle.weight([kx, ky, kz]) as f64;
                    let f = spectrum[idx];
                    fw[idx] += Complex64::new(f.re as f64, f.im as f64) * weight;
                    w[idx] += weight * weight;
                    largest = largest.max(weight);
                });
                sums.counts[k] += 1;
                sums.reach[k] += largest * largest;
            }
            Ok(sums)
        })
        .collect();
    let mut total = ClassSums::zeros(classes, half);
    for block in blocks {
        total.add(&block?);
    }
    Ok(total)
}

/// The average of one class from its sums: `irFFT(Σ W·F / max(Σ W², floor·reach) · band)`
/// where `band` is 0/1 on the half grid; `m` is the box size.
pub fn average_from_sums(
    fw: ArrayView3<Complex64>,
    w: ArrayView3<f64>,
    reach: f64,
    floor: f64,
    band: ArrayView3<f32>,
    m: usize,
    out: ArrayViewMut3<f32>,
) -> Result<()> {
    let fft = Fft3::new([m; 3])?;
    ensure(
        fw.shape() == fft.half_shape() && w.shape() == fw.shape() && band.shape() == fw.shape(),
        || {
            format!(
                "sums {:?}, {:?} and band {:?} do not fit a box of {m}",
                fw.shape(),
                w.shape(),
                band.shape()
            )
        },
    )?;
    let lowest = floor * reach;
    let mut spectrum = Array3::<Complex32>::zeros(fft.half_shape());
    Zip::from(&mut spectrum)
        .and(&fw)
        .and(&w)
        .and(&band)
        .for_each(|s, &f, &ws, &b| {
            let v = f * (b as f64) / ws.max(lowest).max(f64::MIN_POSITIVE);
            *s = Complex32::new(v.re as f32, v.im as f32);
        });
    fft.inverse(spectrum.view_mut(), out, &mut fft.scratch())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::Interpolation;
    use crate::rotation::{rotation_matrix, IDENTITY};
    use crate::wedge::{Sampling, TiltWedge};
    use std::sync::Arc;

    #[test]
    fn unrotated_copies_average_back_to_the_volume() {
        let n = 8;
        let v = Array3::from_shape_fn((n, n, n), |(z, y, x)| {
            ((z * 3 + y * 5 + x) as f32 * 0.4).cos()
        });
        let stack = ndarray::stack![Axis(0), v.view(), v.view(), v.view()];
        let pre = Preprocess::new(n, 1, Array3::ones((n, n, n)), Interpolation::Cubic).unwrap();
        let full = Arc::new(Sampling::Wedges(vec![TiltWedge {
            angle1: 0.0,
            angle2: 0.0,
            cutoff: n as f64,
            smooth: 0.0,
            tilt_axis: IDENTITY,
        }]));
        let geo = vec![
            Geometry {
                rotation: IDENTITY,
                shift: [0.0; 3],
                sampling: full
            };
            3
        ];
        let sums = class_sums(&pre, stack.view(), &geo, &[0, 0, 0], 1).unwrap();
        assert_eq!(sums.counts, vec![3]);
        assert_eq!(sums.reach, vec![3.0]);
        let band = Array3::ones(sums.w.index_axis(Axis(0), 0).raw_dim());
        let mut avg = Array3::zeros((n, n, n));
        average_from_sums(
            sums.fw.index_axis(Axis(0), 0),
            sums.w.index_axis(Axis(0), 0),
            sums.reach[0],
            0.05,
            band.view(),
            n,
            avg.view_mut(),
        )
        .unwrap();
        let err = (&avg - &v).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
        assert!(err < 1e-4, "{err}");
    }

    #[test]
    fn labels_must_name_existing_classes() {
        let n = 8;
        let pre = Preprocess::new(n, 1, Array3::ones((n, n, n)), Interpolation::Linear).unwrap();
        let stack = Array4::<f32>::zeros((1, n, n, n));
        let geo = vec![Geometry {
            rotation: rotation_matrix(1.0, 2.0, 3.0),
            shift: [0.0; 3],
            sampling: Arc::new(Sampling::Wedges(vec![])),
        }];
        assert!(class_sums(&pre, stack.view(), &geo, &[2], 2).is_err());
    }
}
