//! Sampling weights: how a particle was sampled in Fourier space, as a weight `W(u) ≥ 0` over
//! the frequencies `u` of its own (tomogram) frame, seen from its aligned frame as `W(R·k)`.
//! A [`Sampling`] is one of three sources:
//!
//! * analytic wedges ([`TiltWedge`]; several multiply, as PyTom's `DoubleTiltWedge`);
//! * the central slices of a tilt series ([`TiltSeries`]), weighted per tilt by the exposure
//!   filter and `|CTF|`;
//! * a weight volume on the rFFT half grid of the particle box ([`WeightGrid`]), with an
//!   optional filter the particle's own spectrum is multiplied by first (see there).
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

/// Electron optics of a tilt series, for its CTF.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Optics {
    /// Acceleration voltage, kV.
    pub voltage: f64,
    /// Spherical aberration, mm.
    pub cs: f64,
    /// Amplitude contrast, a fraction in `0..1`.
    pub amplitude_contrast: f64,
}

impl Optics {
    /// Relativistic electron wavelength in Å.
    fn wavelength(&self) -> f64 {
        let volts = self.voltage * 1e3;
        12.264_324_7 / (volts * (1.0 + 0.978_466e-6 * volts)).sqrt()
    }
}

/// One image of a tilt series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tilt {
    /// Unit normal of the image's central plane in the tomogram frame `(x, y, z)`: the beam
    /// direction (a tilt `θ` about y gives `(−sin θ, 0, cos θ)`).
    pub normal: [f64; 3],
    /// Electron exposure before or at this image, e/Å² (0: no exposure filter).
    pub exposure: f64,
    /// Defocus, Å, positive for underfocus (None: no CTF).
    pub defocus: Option<f64>,
    /// Amplitude scale of the image (RELION's `rlnCtfScalefactor`; 1 by default).
    pub scale: f64,
    /// B-factor of the image, Å² (RELION's `rlnCtfBfactor`; envelope `exp(−B·s²/4)`).
    pub bfactor: f64,
}

/// The central slices of a tilt series. A slice is one Fourier voxel thick: the image of normal
/// `n` contributes to the frequency `u` with the triangle `t = max(0, 1 − |n·u|)` and the value
/// `v = scale · exp(−B·s²/4) · E(s, exposure) · |CTF(s, defocus)|`, where `s` is the frequency
/// of `u` within the image plane in 1/Å. `E` is the exposure filter of Grant & Grigorieff
/// (2015), `exp(−e / (2·(0.245·s^−1.665 + 2.81)))`, and `CTF = sin(π·λ·Δf·s² − π/2·Cs·λ³·s⁴ +
/// asin(Q0))`. The weight is `Σ t·v / max(Σ t, 1)`: the mean over the slices that overlap
/// (near the origin), the coverage between slices (far from it); 0 beyond half the box.
#[derive(Debug, Clone, PartialEq)]
pub struct TiltSeries {
    pub tilts: Vec<Tilt>,
    pub optics: Optics,
    /// Å per voxel of the particle box (only needed with exposures, defoci or B-factors).
    pub pixel_size: f64,
    /// The particle box size `n` (the unbinned one): frequencies are `|u| / (n·pixel_size)`.
    pub box_size: usize,
}

impl TiltSeries {
    fn validate(&self) -> Result<()> {
        ensure(!self.tilts.is_empty() && self.box_size > 0, || {
            "a tilt series needs at least one tilt and a box size".into()
        })?;
        let needs_pixel = self
            .tilts
            .iter()
            .any(|t| t.exposure != 0.0 || t.defocus.is_some() || t.bfactor != 0.0);
        ensure(
            !needs_pixel || (self.pixel_size.is_finite() && self.pixel_size > 0.0),
            || "a tilt series with exposures or defoci needs a pixel size > 0".into(),
        )?;
        let o = &self.optics;
        ensure(
            o.voltage > 0.0 && o.cs.is_finite() && (0.0..1.0).contains(&o.amplitude_contrast),
            || {
                format!(
                    "optics: voltage {} kV must be > 0 and amplitude contrast {} within 0..1",
                    o.voltage, o.amplitude_contrast
                )
            },
        )?;
        for t in &self.tilts {
            let norm = t.normal.iter().map(|v| v * v).sum::<f64>().sqrt();
            ensure((norm - 1.0).abs() < 1e-6, || {
                format!("tilt normal {:?} is not a unit vector", t.normal)
            })?;
            ensure(
                t.exposure.is_finite()
                    && t.exposure >= 0.0
                    && t.scale.is_finite()
                    && t.scale >= 0.0
                    && t.bfactor.is_finite()
                    && t.defocus.is_none_or(f64::is_finite),
                || format!("tilt values must be finite, exposure and scale >= 0: {t:?}"),
            )?;
        }
        Ok(())
    }

    /// The value `v` of one tilt at the in-plane frequency `s` (1/Å).
    fn value(&self, t: &Tilt, s: f64) -> f64 {
        let mut v = t.scale;
        if t.bfactor != 0.0 {
            v *= (-t.bfactor * s * s / 4.0).exp();
        }
        if t.exposure > 0.0 && s > 0.0 {
            v *= (-t.exposure / (2.0 * (0.245 * s.powf(-1.665) + 2.81))).exp();
        }
        if let Some(defocus) = t.defocus {
            let o = &self.optics;
            let lambda = o.wavelength();
            let cs = o.cs * 1e7; // mm → Å
            let s2 = s * s;
            let gamma = std::f64::consts::PI * lambda * defocus * s2
                - std::f64::consts::FRAC_PI_2 * cs * lambda.powi(3) * s2 * s2
                + o.amplitude_contrast.asin();
            v *= gamma.sin().abs();
        }
        v
    }

    /// Weight of the tomogram-frame frequency `u` (Fourier voxels).
    fn weight(&self, u: [f64; 3]) -> f32 {
        let r2 = u[0] * u[0] + u[1] * u[1] + u[2] * u[2];
        let half = (self.box_size / 2) as f64;
        if r2 > half * half {
            return 0.0;
        }
        let to_angstrom = 1.0 / (self.box_size as f64 * self.pixel_size);
        let (mut cover, mut sum) = (0.0, 0.0);
        for t in &self.tilts {
            let d = t.normal[0] * u[0] + t.normal[1] * u[1] + t.normal[2] * u[2];
            if d.abs() >= 1.0 {
                continue;
            }
            let triangle = 1.0 - d.abs();
            let s = (r2 - d * d).max(0.0).sqrt() * to_angstrom;
            cover += triangle;
            sum += triangle * self.value(t, s);
        }
        (sum / cover.max(1.0)) as f32
    }
}

/// A weight volume on the rFFT half grid `(n, n, n / 2 + 1)` of the particle box (`[uz, uy,
/// ux]`, DC at index 0, negative frequencies wrapped as numpy's `rfftn`), in the particle's own
/// frame, read at `W(R·k)` by trilinear interpolation (`W(−u) = W(u)` gives `ux < 0`).
/// `data_filter`, on the same grid, multiplies the particle's own spectrum exactly, before
/// binning and alignment: it makes the data consistent with the weight (`F ≈ W·S`), e.g.
/// the sign of a 3-D CTF (phase flipping) or `1 / multiplicity` for RELION's sums.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightGrid {
    weight: Array3<f32>,
    data_filter: Option<Array3<f32>>,
}

impl WeightGrid {
    /// A checked grid: `weight` `(n, n, n / 2 + 1)`, finite and ≥ 0; `data_filter` finite,
    /// of the same shape.
    pub fn new(weight: Array3<f32>, data_filter: Option<Array3<f32>>) -> Result<Self> {
        let grid = Self {
            weight,
            data_filter,
        };
        grid.validate()?;
        Ok(grid)
    }

    fn size(&self) -> usize {
        self.weight.shape()[0]
    }

    fn validate(&self) -> Result<()> {
        let n = self.size();
        let half = [n, n, n / 2 + 1];
        ensure(n > 1 && self.weight.shape() == half, || {
            format!(
                "weight grid of shape {:?} is not a half grid (n, n, n/2+1)",
                self.weight.shape()
            )
        })?;
        ensure(
            self.weight.iter().all(|v| v.is_finite() && *v >= 0.0),
            || "weights must be finite and >= 0".into(),
        )?;
        if let Some(g) = &self.data_filter {
            ensure(g.shape() == half && g.iter().all(|v| v.is_finite()), || {
                format!(
                    "data filter of shape {:?} must be finite on the weights' grid {half:?}",
                    g.shape()
                )
            })?;
        }
        Ok(())
    }

    /// Trilinear interpolation at the frequency `u` (Fourier voxels); 0 beyond the grid.
    fn weight(&self, u: [f64; 3]) -> f32 {
        let u = if u[0] < 0.0 { u.map(|v| -v) } else { u };
        let n = self.size();
        let half = (n / 2) as i64;
        let base = u.map(|v| v.floor());
        let frac = [0, 1, 2].map(|a| u[a] - base[a]);
        let mut sum = 0.0;
        for corner in 0..8 {
            let step = [corner & 1, (corner >> 1) & 1, (corner >> 2) & 1];
            let at = [0, 1, 2].map(|a| base[a] as i64 + step[a] as i64);
            if at[0] > half || at[1].abs() > half || at[2].abs() > half {
                continue;
            }
            let weight: f64 = (0..3)
                .map(|a| if step[a] == 1 { frac[a] } else { 1.0 - frac[a] })
                .product();
            if weight == 0.0 {
                continue;
            }
            let wrap = |v: i64| v.rem_euclid(n as i64) as usize;
            sum += weight * self.weight[[wrap(at[2]), wrap(at[1]), at[0] as usize]] as f64;
        }
        sum as f32
    }
}

/// How a particle was sampled (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    /// The product of analytic single-tilt wedges (none: fully sampled within `n / 2`).
    Wedges(Vec<TiltWedge>),
    /// The central slices of a tilt series.
    Tilts(TiltSeries),
    /// A weight volume on the particle's half grid.
    Grid(WeightGrid),
}

impl Sampling {
    /// An error if any parameter is out of range (a grid was checked when it was made).
    pub fn validate(&self) -> Result<()> {
        match self {
            Sampling::Wedges(w) => w.iter().try_for_each(TiltWedge::validate),
            Sampling::Tilts(t) => t.validate(),
            Sampling::Grid(_) => Ok(()),
        }
    }

    /// The box size of a weight grid (None for the other sources).
    pub fn grid_size(&self) -> Option<usize> {
        match self {
            Sampling::Grid(g) => Some(g.size()),
            _ => None,
        }
    }

    /// The filter of the particle's own spectrum, if any (see [`WeightGrid`]).
    pub fn data_filter(&self) -> Option<&Array3<f32>> {
        match self {
            Sampling::Grid(g) => g.data_filter.as_ref(),
            _ => None,
        }
    }
}

enum Evaluator<'a> {
    Wedges(Vec<Frame>),
    Tilts(&'a TiltSeries),
    Grid(&'a WeightGrid),
}

/// A particle's sampling seen from its aligned frame: `W(R·k)`, ready to evaluate.
pub struct ParticleWeight<'a> {
    rotation: Mat3,
    evaluator: Evaluator<'a>,
}

impl<'a> ParticleWeight<'a> {
    /// `sampling` seen through the particle rotation `rotation`; `n` is the box the weight is
    /// evaluated in (an analytic wedge's cutoff 0 means `n / 2` of it).
    pub fn new(n: usize, sampling: &'a Sampling, rotation: &Mat3) -> Result<Self> {
        ensure(n > 0, || "box size must be positive".into())?;
        sampling.validate()?;
        let evaluator = match sampling {
            Sampling::Wedges(w) => {
                Evaluator::Wedges(w.iter().map(|w| Frame::new(w, rotation, n)).collect())
            }
            Sampling::Tilts(t) => Evaluator::Tilts(t),
            Sampling::Grid(g) => Evaluator::Grid(g),
        };
        Ok(Self {
            rotation: *rotation,
            evaluator,
        })
    }

    /// Weight of the aligned-frame frequency `k = (kx, ky, kz)`, Fourier voxels.
    #[inline]
    pub fn weight(&self, k: [f64; 3]) -> f32 {
        match &self.evaluator {
            Evaluator::Wedges(frames) => frames.iter().map(|f| f.weight(k)).product(),
            Evaluator::Tilts(t) => t.weight(apply(&self.rotation, k)),
            Evaluator::Grid(g) => g.weight(apply(&self.rotation, k)),
        }
    }

    fn fill(&self, n: usize, mut out: ArrayViewMut3<f32>) {
        for_each_frequency([n; 3], |[kz, ky, kx], idx| {
            out[idx] = self.weight([kx, ky, kz])
        });
    }
}

/// Weights `W(R·k)` of `sampling` for a box of size `n`, on the half grid `(n, n, n / 2 + 1)`,
/// `[kz, ky, kx]`.
pub fn sampling_weights(n: usize, sampling: &Sampling, rotation: &Mat3) -> Result<Array3<f32>> {
    let pw = ParticleWeight::new(n, sampling, rotation)?;
    let mut out = Array3::zeros((n, n, n / 2 + 1));
    pw.fill(n, out.view_mut());
    Ok(out)
}

/// Weights of many particles into `out` `(N, n, n, n / 2 + 1)`: particle `i` was sampled as
/// `samplings[i]` and has rotation `rotations[i]`; in parallel over particles.
pub fn weight_stack(
    n: usize,
    samplings: &[&Sampling],
    rotations: &[Mat3],
    mut out: ArrayViewMut4<f32>,
) -> Result<()> {
    ensure(
        samplings.len() == rotations.len() && out.shape() == [samplings.len(), n, n, n / 2 + 1],
        || {
            format!(
                "{} samplings, {} rotations and output {:?} do not match",
                samplings.len(),
                rotations.len(),
                out.shape()
            )
        },
    )?;
    let weights = samplings
        .iter()
        .zip(rotations)
        .map(|(s, r)| ParticleWeight::new(n, s, r))
        .collect::<Result<Vec<_>>>()?;
    Zip::from(out.axis_iter_mut(Axis(0)))
        .and(&weights)
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

    fn wedge_weights(n: usize, w: &[TiltWedge], r: &Mat3) -> Result<Array3<f32>> {
        sampling_weights(n, &Sampling::Wedges(w.to_vec()), r)
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

    fn tilt_series(angles: &[f64], exposure: f64, defocus: Option<f64>) -> TiltSeries {
        let tilts = angles
            .iter()
            .map(|a| {
                let t = a.to_radians();
                Tilt {
                    normal: [-t.sin(), 0.0, t.cos()],
                    exposure,
                    defocus,
                    scale: 1.0,
                    bfactor: 0.0,
                }
            })
            .collect();
        TiltSeries {
            tilts,
            optics: Optics {
                voltage: 300.0,
                cs: 0.0,
                amplitude_contrast: 0.0,
            },
            pixel_size: 4.0,
            box_size: 64,
        }
    }

    #[test]
    fn dense_tilt_slices_cover_the_analytic_wedge_of_their_range() {
        // −40..60 in 2° steps: within |u| ≤ 8 the slices (0.28 voxels apart) leave no gap, so
        // the weight is 1 where the wedge Angle1 = 30, Angle2 = 50 samples and 0 well inside
        // the missing region; positive tilts sample the half ux·uz > 0, as the wedge's Angle1.
        let angles: Vec<f64> = (0..=50).map(|i| -40.0 + 2.0 * i as f64).collect();
        let series = Sampling::Tilts(tilt_series(&angles, 0.0, None));
        let wedge = Sampling::Wedges(vec![single(30.0, 50.0)]);
        let (ts, pw) = (
            ParticleWeight::new(64, &series, &IDENTITY).unwrap(),
            ParticleWeight::new(64, &wedge, &IDENTITY).unwrap(),
        );
        let mut compared = 0;
        for phi in (0..360).step_by(3) {
            let a = (phi as f64).to_radians();
            let u = [6.0 * a.cos(), 1.0, 6.0 * a.sin()];
            // Skip the wedge edges, where a one-voxel slice overhangs the analytic boundary.
            let near_edge = [60.0f64, 240.0, 140.0, 320.0]
                .iter()
                .any(|&e| ((phi as f64 - e + 540.0) % 360.0 - 180.0).abs() < 12.0);
            if !near_edge {
                assert_eq!(ts.weight(u), pw.weight(u), "at {phi}°");
                compared += 1;
            }
        }
        assert!(compared > 80);
        assert_eq!(ts.weight([0.0, 3.0, 0.0]), 1.0); // the tilt axis: every slice
    }

    #[test]
    fn a_single_tilt_has_the_exposure_filter_and_ctf_of_its_image() {
        let (exposure, defocus) = (30.0, 25_000.0);
        let series = tilt_series(&[0.0], exposure, Some(defocus));
        let sampling = Sampling::Tilts(series.clone());
        let pw = ParticleWeight::new(64, &sampling, &IDENTITY).unwrap();
        let lambda = series.optics.wavelength();
        assert!((lambda - 0.019_687).abs() < 1e-5); // 300 kV
        for kx in [3.0f64, 7.0, 12.5] {
            let s = (kx * kx + 4.0).sqrt() / (64.0 * 4.0); // in-plane frequency, 1/Å
            let filter = (-exposure / (2.0 * (0.245 * s.powf(-1.665) + 2.81))).exp();
            let ctf = (std::f64::consts::PI * lambda * defocus * s * s)
                .sin()
                .abs();
            let got = pw.weight([kx, 2.0, 0.3]) as f64; // 0.3 off the plane: triangle 0.7
            assert!((got - 0.7 * filter * ctf).abs() < 1e-6, "{kx}: {got}");
        }
        assert_eq!(pw.weight([3.0, 0.0, 1.0]), 0.0); // one voxel off the plane
        assert_eq!(pw.weight([40.0, 0.0, 0.0]), 0.0); // beyond half the box
    }

    #[test]
    fn a_weight_grid_interpolates_with_hermitian_symmetry_and_rotates_with_the_particle() {
        let n = 8;
        let mut weight = Array3::<f32>::zeros((n, n, n / 2 + 1));
        for ((z, y, x), v) in weight.indexed_iter_mut() {
            *v = (x + 2 * y + 3 * z) as f32;
        }
        let grid = Sampling::Grid(WeightGrid::new(weight.clone(), None).unwrap());
        let pw = ParticleWeight::new(n, &grid, &IDENTITY).unwrap();
        assert_eq!(pw.weight([1.0, 2.0, 3.0]), weight[[3, 2, 1]]);
        assert_eq!(pw.weight([-1.0, -2.0, -3.0]), weight[[3, 2, 1]]); // W(−u) = W(u)
        assert_eq!(pw.weight([1.0, -2.0, 0.0]), weight[[0, 6, 1]]); // negative ky wraps
        let mid = pw.weight([1.5, 2.0, 3.0]);
        assert!((mid - 0.5 * (weight[[3, 2, 1]] + weight[[3, 2, 2]])).abs() < 1e-5);
        assert_eq!(pw.weight([5.0, 0.0, 0.0]), 0.0); // beyond the grid
                                                     // A particle rotated by 90° about z sees the grid's (kx, ky) at R·k.
        let r = rotation_matrix(90.0, 0.0, 0.0);
        let rotated = ParticleWeight::new(n, &grid, &r).unwrap();
        let k = [1.0, 2.0, 0.0];
        assert!((rotated.weight(k) - pw.weight(apply(&r, k))).abs() < 1e-6);
        assert!((rotated.weight(k) - pw.weight([-2.0, 1.0, 0.0])).abs() < 1e-5);
    }

    #[test]
    fn negative_or_nan_weights_are_errors() {
        let mut weight = Array3::<f32>::ones((8, 8, 5));
        weight[[1, 1, 1]] = -0.5;
        assert!(WeightGrid::new(weight.clone(), None).is_err());
        weight[[1, 1, 1]] = f32::NAN;
        assert!(WeightGrid::new(weight, None).is_err());
        assert!(WeightGrid::new(Array3::ones((8, 8, 8)), None).is_err());
        let filter = Some(Array3::from_elem((8, 8, 5), f32::INFINITY));
        assert!(WeightGrid::new(Array3::ones((8, 8, 5)), filter).is_err());
    }
}
