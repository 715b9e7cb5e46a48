//! Resampling of `[z, y, x]` volumes under an affine map, by trilinear or cubic B-spline
//! interpolation.
//!
//! `out(p) = in(M·p + offset)` for every output voxel `p = (x, y, z)` (voxel indices).
//! Boundary handling equals `scipy.ndimage.map_coordinates(mode="constant", cval=0)`:
//! a point outside `[0, n − 1]` on any axis gives 0; inside, the spline sees the volume
//! mirrored about its edge voxels. Cubic interpolation first turns the volume into
//! B-spline coefficients (as scipy's `spline_filter`), then evaluates the cubic B-spline.

use ndarray::{Array3, Array4, ArrayView3, ArrayView4, ArrayViewMut1, ArrayViewMut3, Axis, Zip};
use rayon::prelude::*;

use crate::error::{ensure, Result};
use crate::rotation::{apply, Mat3};

/// How values between voxels are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// Trilinear (scipy `order=1`).
    Linear,
    /// Cubic B-spline with prefilter (scipy `order=3`).
    Cubic,
}

/// The map `p ↦ matrix·p + offset` from output to input voxel coordinates `(x, y, z)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub matrix: Mat3,
    pub offset: [f64; 3],
}

/// Points this close outside the box count as on its edge, so that exact rotations by
/// multiples of 90° keep their outer voxels despite rounding in the matrix.
const EDGE_TOLERANCE: f64 = 1e-6;

/// The pole of the cubic B-spline prefilter, `√3 − 2`.
const POLE: f64 = -0.267_949_192_431_122_7;

/// Cubic B-spline coefficients of a volume (mirror boundary), as `scipy.ndimage.spline_filter`.
pub fn spline_coefficients(volume: ArrayView3<f32>) -> Array3<f32> {
    let mut coeffs = volume.to_owned();
    let longest = volume.shape().iter().copied().max().unwrap_or(0);
    let mut line = vec![0.0f64; longest];
    for axis in 0..3 {
        for mut lane in coeffs.lanes_mut(Axis(axis)) {
            filter_line(&mut lane, &mut line);
        }
    }
    coeffs
}

/// In-place causal + anticausal recursion of one line, in f64 (Unser 1993, mirror ends).
fn filter_line(lane: &mut ArrayViewMut1<f32>, line: &mut [f64]) {
    let n = lane.len();
    if n < 2 {
        return;
    }
    let c = &mut line[..n];
    let gain = (1.0 - POLE) * (1.0 - 1.0 / POLE);
    for (dst, &src) in c.iter_mut().zip(lane.iter()) {
        *dst = src as f64 * gain;
    }
    // Causal start: the infinite mirrored sum, folded into one period.
    let z_n1 = POLE.powi(n as i32 - 1);
    let mut z_i = POLE;
    let mut c0 = c[0] + z_n1 * c[n - 1];
    for i in 1..n - 1 {
        c0 += z_i * (c[i] + z_n1 * c[n - 1 - i]);
        z_i *= POLE;
    }
    c[0] = c0 / (1.0 - z_n1 * z_n1);
    for i in 1..n {
        c[i] += POLE * c[i - 1];
    }
    c[n - 1] = (POLE * c[n - 2] + c[n - 1]) * POLE / (POLE * POLE - 1.0);
    for i in (0..n - 1).rev() {
        c[i] = POLE * (c[i + 1] - c[i]);
    }
    for (dst, &src) in lane.iter_mut().zip(c.iter()) {
        *dst = src as f32;
    }
}

/// Index `i` reflected into `0..n` about the edge voxels (whole-sample mirror).
#[inline]
fn mirror(i: i64, n: i64) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m >= n { period - m } else { m }) as usize
}

/// Cubic B-spline weights of the taps at `floor − 1 .. floor + 2` for fraction `t`.
#[inline]
fn cubic_weights(t: f64) -> [f64; 4] {
    let t2 = t * t;
    let t3 = t2 * t;
    let u = 1.0 - t;
    [
        u * u * u / 6.0,
        (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0,
        (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0,
        t3 / 6.0,
    ]
}

/// A prepared input: the samples (or spline coefficients) in a contiguous `[z, y, x]` array.
struct Source<'a> {
    data: &'a [f32],
    dims: [i64; 3], // (nx, ny, nz)
    strides: [usize; 3],
}

impl Source<'_> {
    /// Value at `(x, y, z)`: the weighted sum of `K` taps per axis starting at `first`.
    #[inline]
    fn taps<const K: usize>(&self, first: [i64; 3], w: &[[f64; K]; 3]) -> f64 {
        let interior = (0..3).all(|a| first[a] >= 0 && first[a] + K as i64 <= self.dims[a]);
        let mut idx = [[0usize; K]; 3];
        for a in 0..3 {
            for (k, slot) in idx[a].iter_mut().enumerate() {
                let i = first[a] + k as i64;
                let i = if interior {
                    i as usize
                } else {
                    mirror(i, self.dims[a])
                };
                *slot = i * self.strides[a];
            }
        }
        let mut total = 0.0;
        for (kz, &iz) in idx[2].iter().enumerate() {
            let mut plane = 0.0;
            for (ky, &iy) in idx[1].iter().enumerate() {
                let row = &self.data[iz + iy..];
                let mut acc = 0.0;
                for (kx, &ix) in idx[0].iter().enumerate() {
                    acc += w[0][kx] * row[ix] as f64;
                }
                plane += w[1][ky] * acc;
            }
            total += w[2][kz] * plane;
        }
        total
    }

    #[inline]
    fn sample(&self, p: [f64; 3], interp: Interpolation) -> f32 {
        let mut base = [0i64; 3];
        let mut frac = [0f64; 3];
        for a in 0..3 {
            let hi = (self.dims[a] - 1) as f64;
            if !(p[a] >= -EDGE_TOLERANCE && p[a] <= hi + EDGE_TOLERANCE) {
                return 0.0;
            }
            let q = p[a].clamp(0.0, hi);
            let f = q.floor();
            base[a] = f as i64;
            frac[a] = q - f;
        }
        match interp {
            Interpolation::Linear => {
                let w = frac.map(|t| [1.0 - t, t]);
                self.taps::<2>(base, &w) as f32
            }
            Interpolation::Cubic => {
                let w = frac.map(cubic_weights);
                self.taps::<4>(base.map(|b| b - 1), &w) as f32
            }
        }
    }
}

/// Resample a prepared (contiguous) input into `out`, in parallel over output planes.
fn resample(
    prepared: ArrayView3<f32>,
    affine: &Affine,
    interp: Interpolation,
    mut out: ArrayViewMut3<f32>,
) {
    let (nz, ny, nx) = prepared.dim();
    let source = Source {
        data: prepared.as_slice().expect("prepared input is contiguous"),
        dims: [nx as i64, ny as i64, nz as i64],
        strides: [1, nx, nx * ny],
    };
    let step = [
        affine.matrix[0][0],
        affine.matrix[1][0],
        affine.matrix[2][0],
    ];
    out.outer_iter_mut()
        .into_par_iter()
        .enumerate()
        .for_each(|(z, mut plane)| {
            for (y, mut row) in plane.outer_iter_mut().enumerate() {
                let start = apply(&affine.matrix, [0.0, y as f64, z as f64]);
                for (x, v) in row.iter_mut().enumerate() {
                    let xf = x as f64;
                    let p = [0, 1, 2].map(|a| start[a] + affine.offset[a] + xf * step[a]);
                    *v = source.sample(p, interp);
                }
            }
        });
}

fn prepare(volume: ArrayView3<f32>, interp: Interpolation) -> Array3<f32> {
    match interp {
        Interpolation::Linear => volume.as_standard_layout().into_owned(),
        Interpolation::Cubic => spline_coefficients(volume),
    }
}

/// `out(p) = volume(M·p + offset)` for one volume; `out` may differ in shape from the input.
pub fn affine_transform(
    volume: ArrayView3<f32>,
    affine: &Affine,
    interp: Interpolation,
    out: ArrayViewMut3<f32>,
) -> Result<()> {
    ensure(!volume.is_empty(), || {
        "cannot resample an empty volume".into()
    })?;
    resample(prepare(volume, interp).view(), affine, interp, out);
    Ok(())
}

/// Resample every volume of a stack `(N, nz, ny, nx)` by its own affine map, in parallel.
pub fn transform_stack(
    stack: ArrayView4<f32>,
    affines: &[Affine],
    interp: Interpolation,
) -> Result<Array4<f32>> {
    let n = stack.len_of(Axis(0));
    ensure(affines.len() == n, || {
        format!("{n} volumes but {} transforms", affines.len())
    })?;
    let mut out = Array4::<f32>::zeros(stack.raw_dim());
    Zip::from(out.outer_iter_mut())
        .and(stack.outer_iter())
        .and(affines)
        .into_par_iter()
        .for_each(|(o, v, a)| resample(prepare(v, interp).view(), a, interp, o));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::{rotation_matrix, IDENTITY};

    fn blob(n: usize) -> Array3<f32> {
        let c = (n / 2) as f32;
        Array3::from_shape_fn((n, n, n), |(z, y, x)| {
            let (dx, dy, dz) = (x as f32 - c - 2.0, y as f32 - c + 1.0, z as f32 - c);
            (-(dx * dx + 2.0 * dy * dy + 0.5 * dz * dz) / 8.0).exp()
        })
    }

    #[test]
    fn identity_reproduces_the_volume() {
        let v = blob(12);
        for interp in [Interpolation::Linear, Interpolation::Cubic] {
            let mut out = Array3::zeros(v.raw_dim());
            let a = Affine {
                matrix: IDENTITY,
                offset: [0.0; 3],
            };
            affine_transform(v.view(), &a, interp, out.view_mut()).unwrap();
            let err = (&out - &v).mapv(f32::abs).fold(0.0f32, |m, &e| m.max(e));
            assert!(err < 1e-5, "{interp:?}: {err}");
        }
    }

    #[test]
    fn integer_shift_moves_voxels() {
        let v = blob(10);
        let mut out = Array3::zeros(v.raw_dim());
        let a = Affine {
            matrix: IDENTITY,
            offset: [2.0, -1.0, 0.0],
        };
        affine_transform(v.view(), &a, Interpolation::Cubic, out.view_mut()).unwrap();
        // out(x, y, z) = v(x + 2, y − 1, z)
        assert!((out[[4, 5, 3]] - v[[4, 4, 5]]).abs() < 1e-5);
        assert_eq!(out[[4, 0, 3]], 0.0); // y − 1 < 0 is outside
    }

    #[test]
    fn quarter_turn_is_exact_on_the_grid() {
        let v = blob(9);
        let c = 4.0;
        let r = rotation_matrix(90.0, 0.0, 0.0);
        let centre = apply(&r, [c, c, c]);
        let a = Affine {
            matrix: r,
            offset: [c - centre[0], c - centre[1], c - centre[2]],
        };
        let mut out = Array3::zeros(v.raw_dim());
        affine_transform(v.view(), &a, Interpolation::Cubic, out.view_mut()).unwrap();
        // R(90° about z) maps (x, y) − c to (−(y − c), x − c).
        for (z, y, x) in [(4, 0, 8), (2, 3, 7), (8, 8, 0)] {
            let (sx, sy) = (c as usize * 2 - y, x);
            assert!((out[[z, y, x]] - v[[z, sy, sx]]).abs() < 1e-5);
        }
    }

    #[test]
    fn mirror_reflects_about_edge_voxels() {
        assert_eq!(mirror(-1, 5), 1);
        assert_eq!(mirror(5, 5), 3);
        assert_eq!(mirror(-6, 5), 2);
        assert_eq!(mirror(3, 1), 0);
    }

    #[test]
    fn stack_needs_one_transform_per_volume() {
        let s = Array4::<f32>::zeros((2, 4, 4, 4));
        let a = Affine {
            matrix: IDENTITY,
            offset: [0.0; 3],
        };
        assert!(transform_stack(s.view(), &[a], Interpolation::Linear).is_err());
    }
}
