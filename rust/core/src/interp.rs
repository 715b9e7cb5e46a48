//! Resampling of `[z, y, x]` volumes under an affine map, by trilinear or cubic B-spline
//! interpolation.
//!
//! `out(p) = in(M·p + offset)` for every output voxel `p = (x, y, z)` (voxel indices).
//! Boundary handling equals `scipy.ndimage.map_coordinates(mode="constant", cval=0)`:
//! a point outside `[0, n − 1]` on any axis gives 0; inside, the spline sees the volume
//! mirrored about its edge voxels. Cubic interpolation first turns the volume into
//! B-spline coefficients (as scipy's `spline_filter`), then evaluates the cubic B-spline.

use ndarray::{Array3, ArrayView3, ArrayView4, ArrayViewMut3, ArrayViewMut4, Axis, Zip};
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
    let mut coeffs = volume.as_standard_layout().into_owned();
    let (nz, ny, nx) = coeffs.dim();
    let data = coeffs.as_slice_mut().expect("standard layout");
    // Each axis is filtered as blocks of `len` rows of `inner` values, all columns at once
    // (vectorised): z and y in place, x on each plane transposed.
    let mut acc = vec![0.0f32; ny * nx.max(nz)];
    filter_block(data, nz, ny * nx, &mut acc);
    let mut plane_t = vec![0.0f32; ny * nx];
    for plane in data.chunks_exact_mut(ny * nx) {
        filter_block(plane, ny, nx, &mut acc);
        transpose(plane, &mut plane_t, ny, nx);
        filter_block(&mut plane_t, nx, ny, &mut acc);
        transpose(&plane_t, plane, nx, ny);
    }
    coeffs
}

/// Causal + anticausal recursion (Unser 1993, mirror ends) along the `len` rows of a block,
/// applied to every one of the `inner` columns together.
fn filter_block(block: &mut [f32], len: usize, inner: usize, acc: &mut [f32]) {
    if len < 2 {
        return;
    }
    let acc = &mut acc[..inner];
    let z = POLE as f32;
    let gain = ((1.0 - POLE) * (1.0 - 1.0 / POLE)) as f32;
    block.iter_mut().for_each(|v| *v *= gain);
    let row = |i: usize| i * inner..(i + 1) * inner;
    // Causal start: the infinite mirrored sum, folded into one period.
    let z_last = POLE.powi(len as i32 - 1);
    let (first, rest) = block.split_at_mut(inner);
    let last = &rest[row(len - 2)];
    for ((a, &f), &l) in acc.iter_mut().zip(first.iter()).zip(last) {
        *a = f + z_last as f32 * l;
    }
    let mut z_i = POLE;
    for i in 1..len - 1 {
        let (wi, wm) = (z_i as f32, (z_i * z_last) as f32);
        let (r, m) = (&rest[row(i - 1)], &rest[row(len - 2 - i)]);
        for ((a, &v), &u) in acc.iter_mut().zip(r).zip(m) {
            *a += wi * v + wm * u;
        }
        z_i *= POLE;
    }
    let norm = (1.0 / (1.0 - z_last * z_last)) as f32;
    for (f, &a) in first.iter_mut().zip(acc.iter()) {
        *f = a * norm;
    }
    for i in 1..len {
        let (done, todo) = block.split_at_mut(i * inner);
        let prev = &done[(i - 1) * inner..];
        for (c, &p) in todo[..inner].iter_mut().zip(prev) {
            *c += z * p;
        }
    }
    let end = (POLE / (POLE * POLE - 1.0)) as f32;
    let (head, tail) = block.split_at_mut((len - 1) * inner);
    for (c, &p) in tail.iter_mut().zip(&head[(len - 2) * inner..]) {
        *c = (z * p + *c) * end;
    }
    for i in (0..len - 1).rev() {
        let (head, tail) = block.split_at_mut((i + 1) * inner);
        for (c, &next) in head[i * inner..].iter_mut().zip(&tail[..inner]) {
            *c = z * (next - *c);
        }
    }
}

/// `dst[j·rows + i] = src[i·cols + j]`: a `rows × cols` matrix, transposed.
fn transpose(src: &[f32], dst: &mut [f32], rows: usize, cols: usize) {
    for (i, row) in src.chunks_exact(cols).take(rows).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            dst[j * rows + i] = v;
        }
    }
}

/// Index `i` reflected into `0..n` about the edge voxels (whole-sample mirror).
#[inline]
fn mirror(mut i: i64, n: i64) -> usize {
    if n == 1 {
        return 0;
    }
    // Taps lie at most two voxels outside, so this loop runs once or twice: no division.
    loop {
        if i < 0 {
            i = -i;
        } else if i >= n {
            i = 2 * (n - 1) - i;
        } else {
            return i as usize;
        }
    }
}

/// Cubic B-spline weights of the taps at `floor − 1 .. floor + 2` for fraction `t`.
const SIXTH: f64 = 1.0 / 6.0;

#[inline]
fn cubic_weights(t: f64) -> [f64; 4] {
    let t2 = t * t;
    let t3 = t2 * t;
    let u = 1.0 - t;
    [
        u * u * u * SIXTH,
        (3.0 * t3 - 6.0 * t2 + 4.0) * SIXTH,
        (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) * SIXTH,
        t3 * SIXTH,
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
    /// Weights and sums are f32: 64 terms whose weights add to 1 stay within f32 precision.
    #[inline]
    fn taps<const K: usize>(&self, first: [i64; 3], w: &[[f32; K]; 3]) -> f32 {
        let [sx, sy, sz] = self.strides;
        let interior = (0..3).all(|a| first[a] >= 0 && first[a] + K as i64 <= self.dims[a]);
        if interior {
            // Sum whole x-rows weighted by wy·wz (SIMD-friendly), then one dot with wx.
            let base = first[0] as usize * sx + first[1] as usize * sy + first[2] as usize * sz;
            let mut rows = [0.0f32; K];
            for (kz, wz) in w[2].iter().enumerate() {
                for (ky, wy) in w[1].iter().enumerate() {
                    let start = base + kz * sz + ky * sy;
                    let row = &self.data[start..start + K];
                    let wyz = wy * wz;
                    for (acc, v) in rows.iter_mut().zip(row) {
                        *acc += wyz * v;
                    }
                }
            }
            return rows.iter().zip(&w[0]).map(|(r, wx)| r * wx).sum();
        }
        let idx: [[usize; K]; 3] = [0, 1, 2].map(|a| {
            std::array::from_fn(|k| mirror(first[a] + k as i64, self.dims[a]) * self.strides[a])
        });
        let mut total = 0.0;
        for (&iz, wz) in idx[2].iter().zip(&w[2]) {
            let mut plane = 0.0;
            for (&iy, wy) in idx[1].iter().zip(&w[1]) {
                let acc: f32 = idx[0]
                    .iter()
                    .zip(&w[0])
                    .map(|(&ix, wx)| wx * self.data[iz + iy + ix])
                    .sum();
                plane += wy * acc;
            }
            total += wz * plane;
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
            // q ≥ 0, so truncation is floor (and avoids a libm call).
            let q = p[a].max(0.0).min(hi);
            let f = q as i64;
            base[a] = f;
            frac[a] = q - f as f64;
        }
        match interp {
            Interpolation::Linear => {
                let w = frac.map(|t| [(1.0 - t) as f32, t as f32]);
                self.taps::<2>(base, &w)
            }
            Interpolation::Cubic => {
                let w = frac.map(|t| cubic_weights(t).map(|v| v as f32));
                self.taps::<4>(base.map(|b| b - 1), &w)
            }
        }
    }
}

/// Resample a prepared (contiguous) input into `out`, in parallel over output planes; with a
/// `weight` of the output's shape, `out = weight · value`, interpolated only where the weight
/// is not 0 (a real-space mask: its zeros cost nothing).
fn resample(
    prepared: ArrayView3<f32>,
    affine: &Affine,
    interp: Interpolation,
    weight: Option<&[f32]>,
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
    let (oy, ox) = (out.shape()[1], out.shape()[2]);
    out.outer_iter_mut()
        .into_par_iter()
        .enumerate()
        .for_each(|(z, mut plane)| {
            for (y, mut row) in plane.outer_iter_mut().enumerate() {
                let start = apply(&affine.matrix, [0.0, y as f64, z as f64]);
                let weights = weight.map(|w| &w[(z * oy + y) * ox..][..ox]);
                for (x, v) in row.iter_mut().enumerate() {
                    let w = weights.map_or(1.0, |w| w[x]);
                    if w == 0.0 {
                        *v = 0.0;
                        continue;
                    }
                    let xf = x as f64;
                    let p = [0, 1, 2].map(|a| start[a] + affine.offset[a] + xf * step[a]);
                    *v = w * source.sample(p, interp);
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
    resample(prepare(volume, interp).view(), affine, interp, None, out);
    Ok(())
}

/// `out(p) = weight(p) · volume(M·p + offset)` (e.g. a real-space mask times the aligned
/// particle), equal to [`affine_transform`] then the product, but interpolated only where the
/// weight is not 0. `weight` has the shape of `out`.
pub fn weighted_affine_transform(
    volume: ArrayView3<f32>,
    affine: &Affine,
    interp: Interpolation,
    weight: ArrayView3<f32>,
    out: ArrayViewMut3<f32>,
) -> Result<()> {
    ensure(!volume.is_empty(), || {
        "cannot resample an empty volume".into()
    })?;
    ensure(weight.shape() == out.shape(), || {
        format!(
            "weight {:?} for an output {:?}",
            weight.shape(),
            out.shape()
        )
    })?;
    let weight = weight.as_standard_layout();
    let prepared = prepare(volume, interp);
    resample(prepared.view(), affine, interp, weight.as_slice(), out);
    Ok(())
}

/// `out[i](p) = stack[i](M_i·p + offset_i)` for a stack `(N, nz, ny, nx)`, in parallel.
pub fn transform_stack(
    stack: ArrayView4<f32>,
    affines: &[Affine],
    interp: Interpolation,
    mut out: ArrayViewMut4<f32>,
) -> Result<()> {
    let n = stack.len_of(Axis(0));
    ensure(affines.len() == n, || {
        format!("{n} volumes but {} transforms", affines.len())
    })?;
    ensure(stack.shape() == out.shape(), || {
        format!("stack {:?} but output {:?}", stack.shape(), out.shape())
    })?;
    Zip::from(out.outer_iter_mut())
        .and(stack.outer_iter())
        .and(affines)
        .into_par_iter()
        .for_each(|(o, v, a)| resample(prepare(v, interp).view(), a, interp, None, o));
    Ok(())
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
    fn weighted_transform_is_the_product_and_skips_zero_weights() {
        let v = blob(12);
        let turn = crate::rotation::rotation_matrix(30.0, 40.0, 50.0);
        let a = Affine {
            matrix: turn,
            offset: [0.7, -0.4, 0.3],
        };
        // Zeros outside a sphere, and a zero inside it.
        let mut weight = Array3::from_shape_fn((12, 12, 12), |(z, y, x)| {
            let r2 = [x, y, z]
                .map(|c| (c as f32 - 6.0).powi(2))
                .iter()
                .sum::<f32>();
            if r2 < 20.0 {
                1.0 - r2 / 40.0
            } else {
                0.0
            }
        });
        weight[[6, 6, 5]] = 0.0;
        for interp in [Interpolation::Linear, Interpolation::Cubic] {
            let (mut plain, mut weighted) =
                (Array3::zeros((12, 12, 12)), Array3::zeros((12, 12, 12)));
            affine_transform(v.view(), &a, interp, plain.view_mut()).unwrap();
            weighted_affine_transform(v.view(), &a, interp, weight.view(), weighted.view_mut())
                .unwrap();
            assert_eq!(weighted, &plain * &weight); // bit for bit
            assert!(plain[[6, 6, 5]] != 0.0 && weighted[[6, 6, 5]] == 0.0);
        }
        let small = Array3::zeros((4, 4, 4));
        let mut out = Array3::zeros((12, 12, 12));
        assert!(weighted_affine_transform(
            v.view(),
            &a,
            Interpolation::Linear,
            small.view(),
            out.view_mut()
        )
        .is_err());
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
        let s = ndarray::Array4::<f32>::zeros((2, 4, 4, 4));
        let mut out = s.clone();
        let a = Affine {
            matrix: IDENTITY,
            offset: [0.0; 3],
        };
        let result = transform_stack(s.view(), &[a], Interpolation::Linear, out.view_mut());
        assert!(result.is_err());
    }
}
