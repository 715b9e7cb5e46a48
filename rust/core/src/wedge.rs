//! Missing-wedge weights on the rFFT half grid, for any particle rotation.
//!
//! A single-tilt wedge (tilt axis y, beam z, PyTom's `SingleTiltWedge`) samples the Fourier
//! voxel `u` of its own frame iff `|u_z| ≈ 0` or `|u_x| ≥ |u_z|·tan(angle)`, where `angle` is
//! `90° − maximal tilt`: `angle1` on the half `u_x·u_z ≥ 0`, `angle2` on the other. Beyond
//! `cutoff` (Fourier voxels) the weight is 0; `smooth` (Fourier voxels) ramps it from 1 to 0
//! with the distance outside the edge plane. Seen from the aligned frame of a particle with
//! rotation `R`, the wedge of the tomogram is `W_i(k) = W_tomo(R·k)`, and a wedge whose tilt
//! axis is rotated by `T` is `W_tomo(q) = W(Tᵀ·q)`. A double-tilt wedge is the product of its
//! single-tilt components.

use ndarray::{Array3, ArrayViewMut3, ArrayViewMut4, Axis, Zip};
use rayon::prelude::*;

use crate::error::{ensure, Result};
use crate::fourier::for_each_frequency;
use crate::rotation::{apply, matmul, transpose, Mat3};

/// `|u_z|` below this counts as the untilted plane, which every tilt series samples.
const PLANE_TOLERANCE: f64 = 1e-4;

/// One single-tilt wedge, angles in degrees (`90 − max tilt`), radii in Fourier voxels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TiltWedge {
    pub angle1: f64,
    pub angle2: f64,
    /// 0 means half the box (`n / 2`), as PyTom.
    pub cutoff: f64,
    pub smooth: f64,
    /// Rotation `T` of the tilt axis (identity: tilt axis y).
    pub tilt_axis: Mat3,
}

impl TiltWedge {
    fn validate(&self) -> Result<()> {
        for (name, a) in [("angle1", self.angle1), ("angle2", self.angle2)] {
            ensure((0.0..=90.0).contains(&a), || {
                format!("wedge {name} must be within 0..90 degrees, got {a}")
            })?;
        }
        ensure(self.cutoff >= 0.0 && self.smooth >= 0.0, || {
            format!(
                "wedge cutoff ({}) and smooth ({}) must be >= 0",
                self.cutoff, self.smooth
            )
        })
    }
}

/// Precomputed form of one component for one particle: `u = M·k` with `M = Tᵀ·R`.
struct Frame {
    m: Mat3,
    sin_cos1: (f64, f64),
    sin_cos2: (f64, f64),
    cutoff2: f64,
    smooth: f64,
}

impl Frame {
    fn new(w: &TiltWedge, rotation: &Mat3, n: usize) -> Self {
        let cutoff = if w.cutoff > 0.0 {
            w.cutoff
        } else {
            (n / 2) as f64
        };
        Self {
            m: matmul(&transpose(&w.tilt_axis), rotation),
            sin_cos1: w.angle1.to_radians().sin_cos(),
            sin_cos2: w.angle2.to_radians().sin_cos(),
            cutoff2: cutoff * cutoff,
            smooth: w.smooth,
        }
    }

    /// Weight of frequency `k = (kx, ky, kz)` of the aligned frame.
    #[inline]
    fn weight(&self, k: [f64; 3]) -> f32 {
        let u = apply(&self.m, k);
        if u[0] * u[0] + u[1] * u[1] + u[2] * u[2] > self.cutoff2 {
            return 0.0;
        }
        if u[2].abs() < PLANE_TOLERANCE {
            return 1.0;
        }
        let (s, c) = if u[0] * u[2] >= 0.0 {
            self.sin_cos1
        } else {
            self.sin_cos2
        };
        // Distance outside the edge plane: > 0 inside the missing region.
        let d = u[2].abs() * s - u[0].abs() * c;
        if d <= 0.0 {
            1.0
        } else if d < self.smooth {
            (1.0 - d / self.smooth) as f32
        } else {
            0.0
        }
    }
}

/// The wedge of one particle seen from its aligned frame: `W(R·k)`, ready to evaluate.
pub struct ParticleWedge {
    frames: Vec<Frame>,
}

impl ParticleWedge {
    /// The product of the single-tilt `wedge` components, for a box of size `n`, seen
    /// through the particle rotation `rotation`.
    pub fn new(n: usize, wedge: &[TiltWedge], rotation: &Mat3) -> Result<Self> {
        check(n, wedge)?;
        let frames = wedge.iter().map(|w| Frame::new(w, rotation, n)).collect();
        Ok(Self { frames })
    }

    /// Weight of the aligned-frame frequency `k = (kx, ky, kz)`, Fourier voxels.
    #[inline]
    pub fn weight(&self, k: [f64; 3]) -> f32 {
        self.frames.iter().map(|f| f.weight(k)).product()
    }

    fn fill(&self, n: usize, mut out: ArrayViewMut3<f32>) {
        for_each_frequency([n; 3], |[kz, ky, kx], idx| {
            out[idx] = self.weight([kx, ky, kz])
        });
    }
}

fn check(n: usize, wedge: &[TiltWedge]) -> Result<()> {
    ensure(n > 0, || "box size must be positive".into())?;
    wedge.iter().try_for_each(TiltWedge::validate)
}

/// Weights `W(R·k)` of a wedge (the product of `wedge`'s components) for a box of size `n`,
/// on the half grid `(n, n, n / 2 + 1)`, `[kz, ky, kx]`.
pub fn wedge_weights(n: usize, wedge: &[TiltWedge], rotation: &Mat3) -> Result<Array3<f32>> {
    let pw = ParticleWedge::new(n, wedge, rotation)?;
    let mut out = Array3::zeros((n, n, n / 2 + 1));
    pw.fill(n, out.view_mut());
    Ok(out)
}

/// Weights of many particles into `out` `(N, n, n, n / 2 + 1)`: particle `i` has wedge
/// `wedges[i]` and rotation `rotations[i]`; in parallel over particles.
pub fn wedge_stack(
    n: usize,
    wedges: &[Vec<TiltWedge>],
    rotations: &[Mat3],
    mut out: ArrayViewMut4<f32>,
) -> Result<()> {
    ensure(
        wedges.len() == rotations.len() && out.shape() == [wedges.len(), n, n, n / 2 + 1],
        || {
            format!(
                "{} wedges, {} rotations and output {:?} do not match",
                wedges.len(),
                rotations.len(),
                out.shape()
            )
        },
    )?;
    let particle_wedges = wedges
        .iter()
        .zip(rotations)
        .map(|(w, r)| ParticleWedge::new(n, w, r))
        .collect::<Result<Vec<_>>>()?;
    Zip::from(out.axis_iter_mut(Axis(0)))
        .and(&particle_wedges)
        .into_par_iter()
        .for_each(|(o, pw)| pw.fill(n, o));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::{rotation_matrix, IDENTITY};

    fn single(a1: f64, a2: f64) -> TiltWedge {
        TiltWedge {
            angle1: a1,
            angle2: a2,
            cutoff: 0.0,
            smooth: 0.0,
            tilt_axis: IDENTITY,
        }
    }

    #[test]
    fn missing_region_is_around_kz() {
        let w = wedge_weights(16, &[single(30.0, 30.0)], &IDENTITY).unwrap();
        assert_eq!(w[[3, 0, 0]], 0.0); // on the beam axis
        assert_eq!(w[[0, 0, 3]], 1.0); // kx axis
        assert_eq!(w[[0, 5, 0]], 1.0); // ky axis (kz = 0 plane)
        assert_eq!(w[[2, 0, 2]], 1.0); // 45° from kz, outside a ±60° wedge's gap
        assert_eq!(w[[4, 0, 1]], 0.0); // 14° from kz: missing
    }

    #[test]
    fn angle_zero_samples_everything_within_cutoff() {
        let w = wedge_weights(8, &[single(0.0, 0.0)], &IDENTITY).unwrap();
        assert_eq!(w[[1, 1, 1]], 1.0);
        assert_eq!(w[[4, 4, 4]], 0.0); // |k| > n / 2
    }

    #[test]
    fn tilt_axis_on_x_swaps_roles_of_kx_and_ky() {
        let mut w = single(30.0, 30.0);
        w.tilt_axis = rotation_matrix(90.0, 0.0, 0.0);
        let out = wedge_weights(16, &[w], &IDENTITY).unwrap();
        assert_eq!(out[[2, 2, 0]], 1.0); // ky now plays kx's part
        assert_eq!(out[[4, 1, 0]], 0.0);
        assert_eq!(out[[2, 0, 2]], 0.0); // kx now plays ky's part: (kx, kz) = (2, 2) is missing
    }

    #[test]
    fn smooth_ramps_from_one_to_zero() {
        let mut w = single(30.0, 30.0);
        w.smooth = 3.0;
        let out = wedge_weights(32, &[w], &IDENTITY).unwrap();
        let on_axis = out[[8, 0, 0]]; // d = 8·sin 30° = 4 > 3
        let near = out[[2, 0, 0]]; // d = 1
        assert_eq!(on_axis, 0.0);
        assert!((near - 2.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn bad_angle_is_an_error() {
        assert!(wedge_weights(8, &[single(95.0, 30.0)], &IDENTITY).is_err());
    }
}
