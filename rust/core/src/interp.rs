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
    filter_columns(data, nz, ny * nx, &mut acc);
    let mut plane_t = vec![0.0f32; ny * nx];
    for plane in data.chunks_exact_mut(ny * nx) {
        filter_block(plane, ny, nx, &mut acc);
        transpose(plane, &mut plane_t, ny, nx);
        filter_block(&mut plane_t, nx, ny, &mut acc);
        transpose(&plane_t, plane, nx, ny);
    }
    coeffs
}

/// [`filter_block`] over the `len` rows of `inner` values, a band of columns at a time, so
/// that the rows' band stays in the L1 cache through the recursion's passes (the columns are
/// independent: same values as one block).
fn filter_columns(data: &mut [f32], len: usize, inner: usize, acc: &mut [f32]) {
    const BAND: usize = 128;
    if inner <= BAND {
        return filter_block(data, len, inner, acc);
    }
    let mut band = vec![0.0f32; len * BAND];
    for start in (0..inner).step_by(BAND) {
        let width = BAND.min(inner - start);
        let band = &mut band[..len * width];
        for (row, chunk) in data.chunks_exact(inner).zip(band.chunks_exact_mut(width)) {
            chunk.copy_from_slice(&row[start..start + width]);
        }
        filter_block(band, len, width, acc);
        for (row, chunk) in data.chunks_exact_mut(inner).zip(band.chunks_exact(width)) {
            row[start..start + width].copy_from_slice(chunk);
        }
    }
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
    // Terms whose weight is below f32's normal range are dropped: they cannot move a sum of
    // data-sized values, and each product with a subnormal weight costs ~70× a normal one
    // (a microcode assist; some mirrored weights `z^i · z^(len−1)` are subnormal from len = 35).
    let mut z_i = POLE;
    for i in 1..len - 1 {
        let (wi, wm) = (z_i as f32, (z_i * z_last) as f32);
        if !wi.is_normal() {
            break; // every later weight is smaller still
        }
        let r = &rest[row(i - 1)];
        if wm.is_normal() {
            let m = &rest[row(len - 2 - i)];
            for ((a, &v), &u) in acc.iter_mut().zip(r).zip(m) {
                *a += wi * v + wm * u;
            }
        } else {
            for (a, &v) in acc.iter_mut().zip(r) {
                *a += wi * v;
            }
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

/// A separable interpolation kernel: `K` taps per axis, the first `BACK` voxels before the
/// floor of the position, with weights from the fraction `t ∈ [0, 1)`.
trait Kernel<const K: usize> {
    const BACK: i32;
    fn weights(t: f64) -> [f32; K];
}

struct Trilinear;

impl Kernel<2> for Trilinear {
    const BACK: i32 = 0;
    #[inline]
    fn weights(t: f64) -> [f32; 2] {
        [(1.0 - t) as f32, t as f32]
    }
}

/// Cubic B-spline: taps at `floor − 1 .. floor + 2`; weights computed in f64, then rounded.
struct CubicBSpline;

const SIXTH: f64 = 1.0 / 6.0;

impl Kernel<4> for CubicBSpline {
    const BACK: i32 = 1;
    #[inline]
    fn weights(t: f64) -> [f32; 4] {
        let t2 = t * t;
        let t3 = t2 * t;
        let u = 1.0 - t;
        [
            u * u * u * SIXTH,
            (3.0 * t3 - 6.0 * t2 + 4.0) * SIXTH,
            (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) * SIXTH,
            t3 * SIXTH,
        ]
        .map(|v| v as f32)
    }
}

/// Where the voxels of one output row sample the input, per axis `(x, y, z)`: whether the
/// point lies in the box, the first tap, and the tap weights. Filled a whole row at a time,
/// in branch-free loops the compiler vectorises.
struct RowTaps<const K: usize> {
    inside: Vec<bool>,
    first: [Vec<i32>; 3],
    weights: [Vec<[f32; K]>; 3],
    values: Vec<f32>,
}

impl<const K: usize> RowTaps<K> {
    fn new(len: usize) -> Self {
        RowTaps {
            inside: vec![false; len],
            first: std::array::from_fn(|_| vec![0; len]),
            weights: std::array::from_fn(|_| vec![[0.0; K]; len]),
            values: vec![0.0; len],
        }
    }

    /// `values[x] = weight[x] · input(origin + x · step)` for the whole row (1 without
    /// weights); only the span between the first and last nonzero weight is interpolated.
    /// Compiled twice on x86-64, once for AVX-512, chosen at run time: the same IEEE
    /// operations in the same order (Rust never fuses a multiply and an add), so the same bits.
    fn fill<W: Kernel<K>>(
        &mut self,
        source: &Source,
        origin: [f64; 3],
        step: [f64; 3],
        weights: Option<&[f32]>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked on the line above.
            return unsafe { self.fill_avx512::<W>(source, origin, step, weights) };
        }
        self.fill_portable::<W>(source, origin, step, weights)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn fill_avx512<W: Kernel<K>>(
        &mut self,
        source: &Source,
        origin: [f64; 3],
        step: [f64; 3],
        weights: Option<&[f32]>,
    ) {
        self.fill_portable::<W>(source, origin, step, weights)
    }

    #[inline(always)]
    fn fill_portable<W: Kernel<K>>(
        &mut self,
        source: &Source,
        origin: [f64; 3],
        step: [f64; 3],
        weights: Option<&[f32]>,
    ) {
        let len = self.values.len();
        let xs = weights.map_or(0..len, |w| {
            let first = w.iter().position(|&v| v != 0.0).unwrap_or(len);
            let last = w.iter().rposition(|&v| v != 0.0).map_or(first, |l| l + 1);
            first..last
        });
        self.locate::<W>(xs, origin, step, source.dims);
        for x in 0..len {
            let w = weights.map_or(1.0, |w| w[x]);
            self.values[x] = if w == 0.0 {
                0.0
            } else {
                w * self.value(source, x)
            };
        }
    }

    /// Voxels `xs` of the row sample the input at `origin + x · step` on each axis.
    #[inline(always)]
    fn locate<W: Kernel<K>>(
        &mut self,
        xs: std::ops::Range<usize>,
        origin: [f64; 3],
        step: [f64; 3],
        dims: [i64; 3],
    ) {
        let x0 = xs.start;
        self.inside[xs.clone()].fill(true);
        for a in 0..3 {
            let hi = (dims[a] - 1) as f64;
            let (inside, first, weights) = (
                &mut self.inside[xs.clone()],
                &mut self.first[a][xs.clone()],
                &mut self.weights[a][xs.clone()],
            );
            for (i, ((ok, f), w)) in inside.iter_mut().zip(first).zip(weights).enumerate() {
                let p = origin[a] + (x0 + i) as f64 * step[a];
                *ok &= p >= -EDGE_TOLERANCE && p <= hi + EDGE_TOLERANCE;
                // q ≥ 0, so truncation is floor (and avoids a libm call).
                let q = p.max(0.0).min(hi);
                let floor = q as i32;
                *f = floor - W::BACK;
                *w = W::weights(q - floor as f64);
            }
        }
    }

    /// Interpolated value of voxel `x` (0 outside the box).
    #[inline(always)]
    fn value(&self, source: &Source, x: usize) -> f32 {
        if !self.inside[x] {
            return 0.0;
        }
        let first = [0, 1, 2].map(|a| self.first[a][x] as i64);
        let w = [0, 1, 2].map(|a| &self.weights[a][x]);
        source.taps(first, w)
    }
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
    #[inline(always)]
    fn taps<const K: usize>(&self, first: [i64; 3], w: [&[f32; K]; 3]) -> f32 {
        let [sx, sy, sz] = self.strides;
        let interior = (0..3).all(|a| first[a] >= 0 && first[a] + K as i64 <= self.dims[a]);
        if interior {
            // Sum whole x-rows weighted by wy·wz (SIMD-friendly), then one dot with wx.
            let base = first[0] as usize * sx + first[1] as usize * sy + first[2] as usize * sz;
            let block = &self.data[base..base + (K - 1) * (sz + sy) + K];
            let mut rows = [0.0f32; K];
            for (kz, wz) in w[2].iter().enumerate() {
                for (ky, wy) in w[1].iter().enumerate() {
                    let start = kz * sz + ky * sy;
                    let row: &[f32; K] = block[start..start + K].try_into().expect("K taps");
                    let wyz = wy * wz;
                    for (acc, v) in rows.iter_mut().zip(row) {
                        *acc += wyz * v;
                    }
                }
            }
            return rows.iter().zip(w[0]).map(|(r, wx)| r * wx).sum();
        }
        let idx: [[usize; K]; 3] = [0, 1, 2].map(|a| {
            std::array::from_fn(|k| mirror(first[a] + k as i64, self.dims[a]) * self.strides[a])
        });
        let mut total = 0.0;
        for (&iz, wz) in idx[2].iter().zip(w[2]) {
            let mut plane = 0.0;
            for (&iy, wy) in idx[1].iter().zip(w[1]) {
                let acc: f32 = idx[0]
                    .iter()
                    .zip(w[0])
                    .map(|(&ix, wx)| wx * self.data[iz + iy + ix])
                    .sum();
                plane += wy * acc;
            }
            total += wz * plane;
        }
        total
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
    out: ArrayViewMut3<f32>,
) {
    match interp {
        Interpolation::Linear => resample_with::<2, Trilinear>(prepared, affine, weight, out),
        Interpolation::Cubic => resample_with::<4, CubicBSpline>(prepared, affine, weight, out),
    }
}

fn resample_with<const K: usize, W: Kernel<K>>(
    prepared: ArrayView3<f32>,
    affine: &Affine,
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
        .for_each_init(
            || RowTaps::<K>::new(ox),
            |taps, (z, mut plane)| {
                for (y, mut row) in plane.outer_iter_mut().enumerate() {
                    let start = apply(&affine.matrix, [0.0, y as f64, z as f64]);
                    let origin = [0, 1, 2].map(|a| start[a] + affine.offset[a]);
                    let weights = weight.map(|w| &w[(z * oy + y) * ox..][..ox]);
                    taps.fill::<W>(&source, origin, step, weights);
                    row.iter_mut().zip(&taps.values).for_each(|(v, &t)| *v = t);
                }
            },
        );
}

/// The input `resample` reads: the samples, or their spline coefficients.
fn prepare(volume: ArrayView3<f32>, interp: Interpolation) -> Result<Array3<f32>> {
    ensure(!volume.is_empty(), || {
        "cannot resample an empty volume".into()
    })?;
    Ok(match interp {
        Interpolation::Linear => volume.as_standard_layout().into_owned(),
        Interpolation::Cubic => spline_coefficients(volume),
    })
}

/// `out(p) = volume(M·p + offset)` for one volume; `out` may differ in shape from the input.
pub fn affine_transform(
    volume: ArrayView3<f32>,
    affine: &Affine,
    interp: Interpolation,
    out: ArrayViewMut3<f32>,
) -> Result<()> {
    resample(prepare(volume, interp)?.view(), affine, interp, None, out);
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
    ensure(weight.shape() == out.shape(), || {
        format!(
            "weight {:?} for an output {:?}",
            weight.shape(),
            out.shape()
        )
    })?;
    let weight = weight.as_standard_layout();
    let prepared = prepare(volume, interp)?;
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
        .try_for_each(|(o, v, a)| {
            resample(prepare(v, interp)?.view(), a, interp, None, o);
            Ok(())
        })
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
    fn identity_reproduces_a_large_noisy_volume() {
        // Long axes (the prefilter's dropped subnormal terms) and a z-pass whose columns do
        // not fill whole bands (60·70 = 32 bands of 128 and one of 104).
        let mut seed = 1u64;
        let v = Array3::from_shape_fn((72, 60, 70), |_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        });
        let mut out = Array3::zeros(v.raw_dim());
        let a = Affine {
            matrix: IDENTITY,
            offset: [0.0; 3],
        };
        affine_transform(v.view(), &a, Interpolation::Cubic, out.view_mut()).unwrap();
        let err = (&out - &v).mapv(f32::abs).fold(0.0f32, |m, &e| m.max(e));
        assert!(err < 2e-6, "{err}");
    }

    /// Rows of both kernels through both builds of `fill`, on points inside, on the edge
    /// (mirrored taps) and outside the box, with zero and nonzero weights.
    #[cfg(target_arch = "x86_64")]
    fn rows_agree_on_both_builds<const K: usize, W: Kernel<K>>() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return; // nothing to compare with on this CPU
        }
        let v = blob(11);
        let source = Source {
            data: v.as_slice().unwrap(),
            dims: [11, 11, 11],
            strides: [1, 11, 121],
        };
        let weights: Vec<f32> = (0..40).map(|x| [0.0, 1.0, -0.5][x % 3]).collect();
        let (mut a, mut b) = (RowTaps::<K>::new(40), RowTaps::<K>::new(40));
        for (origin, step) in [
            ([-3.3, 0.2, 10.0], [0.31, 0.27, -0.26]),
            ([5.0, 5.0, 5.0], [0.0, 0.0, 0.0]),
            ([10.0, -1.7, 4.4], [-0.3, 0.4, 0.05]),
        ] {
            for w in [None, Some(&weights[..])] {
                a.fill_portable::<W>(&source, origin, step, w);
                // SAFETY: the CPU has AVX-512F, checked above.
                unsafe { b.fill_avx512::<W>(&source, origin, step, w) };
                let bits =
                    |r: &RowTaps<K>| r.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&b));
                assert!(a.values.iter().filter(|&&v| v != 0.0).count() > 5);
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx512_and_portable_rows_agree_bit_for_bit() {
        rows_agree_on_both_builds::<2, Trilinear>();
        rows_agree_on_both_builds::<4, CubicBSpline>();
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
