//! Constrained cross-correlation (CCC) of particles over the Fourier region both sampled
//! (Förster et al. 2008), from spectral features (see [`crate::features`]).
//!
//! Each particle is filtered by the other's weight, `W_j·F_i` against `W_i·F_j`:
//! `CCC_ij = Σ h·W_i·W_j·Re(F_i F_j*) / sqrt(Σ h·W_j²·|F_i|² · Σ h·W_i²·|F_j|²)`
//! (for binary wedges `W² = W`: the correlation over the region both sampled).
//! With `X_i = √h·W_i·F_i` as `[Re | Im]`, `P_i = h·|F_i|²` and `Q_i = W_i²`, a block of the
//! matrix is three matrix products: `X_a·X_bᵀ`, `P_a·Q_bᵀ` and `Q_a·P_bᵀ` (f32 GEMMs of
//! `faer`, pure Rust with AVX-512/AVX2 kernels; tiles and their strips of rows in parallel).
//!
//! The real-space mode is PyTom's own definition, per pair: particle `i` filtered by `W_j`
//! and the band, `j` by `W_i` and the band, inverse FFTs, then the normalised
//! cross-correlation under the real-space mask. Each particle's spectrum is first kept only
//! where it sampled (`W_i > 0`: masking in real space leaks a little signal into the missing
//! region), so that the cross-filtering keeps exactly the region both particles sampled.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut2, Axis, Zip};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;

use crate::error::{ensure, Result};
use crate::features::support;
use crate::fft::Fft3;
use crate::interrupt;

/// The per-particle factors of the CCC: `x` `(N, 2M)`, `p` and `q` `(N, M)`, from features
/// `f` `(N, 2M)` (`[Re | Im]`), weights `w` `(N, M)` and Hermitian weights `herm` `(M)`.
pub fn factors(
    f: ArrayView2<f32>,
    w: ArrayView2<f32>,
    herm: &[f32],
) -> Result<(Array2<f32>, Array2<f32>, Array2<f32>)> {
    let (n, m) = w.dim();
    ensure(f.dim() == (n, 2 * m) && herm.len() == m, || {
        format!(
            "features {:?}, wedges {:?} and {} weights do not match",
            f.shape(),
            w.shape(),
            herm.len()
        )
    })?;
    let mut x = Array2::zeros((n, 2 * m));
    let mut p = Array2::zeros((n, m));
    let mut q = Array2::zeros((n, m));
    Zip::from(x.outer_iter_mut())
        .and(p.outer_iter_mut())
        .and(q.outer_iter_mut())
        .and(f.outer_iter())
        .and(w.outer_iter())
        .into_par_iter()
        .for_each(|(mut x, mut p, mut q, f, w)| {
            for k in 0..m {
                let (re, im) = (f[k], f[m + k]);
                let scale = herm[k].sqrt() * w[k];
                x[k] = scale * re;
                x[m + k] = scale * im;
                p[k] = herm[k] * (re * re + im * im);
                q[k] = w[k] * w[k];
            }
        });
    Ok((x, p, q))
}

/// A block of the matrix: rows `rows.0..rows.1`, columns `cols.0..cols.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub rows: (usize, usize),
    pub cols: (usize, usize),
}

/// The factors `(x, p, q)` of a set of particles (as from [`factors`]).
pub type Factors<'a> = (
    ArrayView2<'a, f32>,
    ArrayView2<'a, f32>,
    ArrayView2<'a, f32>,
);

/// Rows of a tile computed as one task: small enough that a matrix of a few tiles keeps
/// every thread busy, large enough for the GEMM kernels to run at full speed.
const STRIP: usize = 256;

/// `a·bᵀ` (row-major f32) on one thread: tiles and strips are the parallel units, which
/// keeps every value independent of the thread count.
fn gemm_nt(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let (m, n, k) = (a.nrows(), b.nrows(), a.ncols());
    let mut out = Array2::zeros((m, n));
    matmul(
        MatMut::from_row_major_slice_mut(out.as_slice_mut().expect("owned"), m, n),
        Accum::Replace,
        MatRef::from_row_major_slice(a.as_slice().expect("standard layout"), m, k),
        MatRef::from_row_major_slice(b.as_slice().expect("standard layout"), n, k).transpose(),
        1.0,
        Par::Seq,
    );
    out
}

/// Rows `rows.0..rows.1` of the particles' factors.
fn part(f: Factors<'_>, rows: (usize, usize)) -> Factors<'_> {
    let r = s![rows.0..rows.1, ..];
    (f.0.slice_move(r), f.1.slice_move(r), f.2.slice_move(r))
}

/// The CCC of particles `a` against particles `b` into `out` (`a` rows × `b` columns).
fn ccc_into((xa, pa, qa): Factors, (xb, pb, qb): Factors, out: ArrayViewMut2<f32>) {
    let num = gemm_nt(xa, xb);
    let (d1, d2) = (gemm_nt(pa, qb), gemm_nt(qa, pb));
    Zip::from(out)
        .and(&num)
        .and(&d1)
        .and(&d2)
        .for_each(|c, &n, &a, &b| {
            let d = a as f64 * b as f64;
            *c = if d > 0.0 {
                (n as f64 / d.sqrt()) as f32
            } else {
                0.0
            };
        });
}

/// The CCC block of particles `a` against particles `b` (factors as from [`factors`]), in
/// strips of rows computed in parallel; `symmetric` when `a` and `b` are the same particles
/// (a diagonal tile), whose upper triangle is then computed once and mirrored.
pub fn ccc_block(a: Factors, b: Factors, symmetric: bool) -> Array2<f32> {
    let mut out = Array2::zeros((a.0.nrows(), b.0.nrows()));
    out.axis_chunks_iter_mut(Axis(0), STRIP)
        .into_par_iter()
        .enumerate()
        .for_each(|(k, mut strip)| {
            let rows = (k * STRIP, k * STRIP + strip.nrows());
            let first = if symmetric { rows.0 } else { 0 };
            let cols = (first, b.0.nrows());
            ccc_into(
                part(a, rows),
                part(b, cols),
                strip.slice_mut(s![.., first..]),
            );
        });
    if symmetric {
        for i in 0..out.nrows() {
            for j in 0..i {
                out[[i, j]] = out[[j, i]];
            }
        }
    }
    out
}

/// The CCC blocks of `tiles`, computed in parallel: a tile's rows index the particles of
/// `rows`, its columns those of `cols` (None: the same particles, the square matrix, whose
/// diagonal tiles are symmetric; else e.g. the landmarks of a Nyström block).
pub fn ccc_tiles(rows: Factors, cols: Option<Factors>, tiles: &[Tile]) -> Result<Vec<Array2<f32>>> {
    let lengths = |(x, p, w): Factors| -> Result<usize> {
        let n = w.nrows();
        ensure(x.nrows() == n && p.nrows() == n, || {
            "factors of different lengths".into()
        })?;
        Ok(n)
    };
    let square = cols.is_none();
    let cols = cols.unwrap_or(rows);
    let (n, m) = (lengths(rows)?, lengths(cols)?);
    ensure(
        tiles.iter().all(|t| {
            t.rows.0 <= t.rows.1 && t.rows.1 <= n && t.cols.0 <= t.cols.1 && t.cols.1 <= m
        }),
        || format!("a tile reaches beyond the {n}×{m} particles"),
    )?;
    tiles
        .par_iter()
        .map(|t| {
            interrupt::check()?;
            let symmetric = square && t.rows == t.cols;
            Ok(ccc_block(part(rows, t.rows), part(cols, t.cols), symmetric))
        })
        .collect()
}

/// Masked normalised cross-correlation `Σ m(a − ā)(b − b̄) / sqrt(Σ m(a − ā)² · Σ m(b − b̄)²)`
/// with mask-weighted means; 0 when either side is flat under the mask.
pub fn masked_ncc(a: ArrayView3<f32>, b: ArrayView3<f32>, mask: ArrayView3<f32>) -> f32 {
    let (mut sm, mut sa, mut sb) = (0.0f64, 0.0f64, 0.0f64);
    Zip::from(&a).and(&b).and(&mask).for_each(|&a, &b, &m| {
        sm += m as f64;
        sa += (m * a) as f64;
        sb += (m * b) as f64;
    });
    if sm <= 0.0 {
        return 0.0;
    }
    let (ma, mb) = (sa / sm, sb / sm);
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    Zip::from(&a).and(&b).and(&mask).for_each(|&a, &b, &m| {
        let (da, db, m) = (a as f64 - ma, b as f64 - mb, m as f64);
        ab += m * da * db;
        aa += m * da * da;
        bb += m * db * db;
    });
    if aa > 0.0 && bb > 0.0 {
        (ab / (aa * bb).sqrt()) as f32
    } else {
        0.0
    }
}

/// PyTom's real-space CCC of `pairs` (see the module docs) from full half-grid `spectra`
/// `(N, m, m, m/2+1)` of the masked aligned particles, their `wedges` on the same grid, the
/// `band` (0/1 on the half grid) and the real-space `mask`. Parallel over pairs.
pub fn real_ccc_pairs(
    spectra: ArrayView4<Complex32>,
    wedges: ArrayView4<f32>,
    band: ArrayView3<f32>,
    mask: ArrayView3<f32>,
    pairs: &[(usize, usize)],
) -> Result<Vec<f32>> {
    let m = mask.shape()[0];
    let half = [m, m, m / 2 + 1];
    let n = spectra.len_of(Axis(0));
    ensure(
        mask.shape() == [m, m, m]
            && spectra.shape()[1..] == half
            && wedges.shape()[1..] == half
            && band.shape() == half
            && wedges.len_of(Axis(0)) == n,
        || {
            format!(
                "spectra {:?}, wedges {:?}, band {:?} and mask {:?} do not match",
                spectra.shape(),
                wedges.shape(),
                band.shape(),
                mask.shape()
            )
        },
    )?;
    ensure(pairs.iter().all(|&(i, j)| i < n && j < n), || {
        format!("a pair names a particle beyond the {n} given")
    })?;
    let fft = Fft3::new([m; 3])?;
    pairs
        .par_iter()
        .map_init(
            || {
                (
                    fft.scratch(),
                    Array3::<Complex32>::zeros(half),
                    Array3::<f32>::zeros((m, m, m)),
                    Array3::<f32>::zeros((m, m, m)),
                )
            },
            |(scratch, work, va, vb), &(i, j)| {
                interrupt::check()?;
                for (out, own, other) in [(&mut *va, i, j), (&mut *vb, j, i)] {
                    Zip::from(&mut *work)
                        .and(spectra.index_axis(Axis(0), own))
                        .and(wedges.index_axis(Axis(0), own))
                        .and(wedges.index_axis(Axis(0), other))
                        .and(&band)
                        .for_each(|o, &s, &w_own, &w_other, &b| {
                            *o = s * (support(w_own) * w_other * b)
                        });
                    fft.inverse(work.view_mut(), out.view_mut(), scratch)
                        .expect("shapes checked");
                }
                Ok(masked_ncc(va.view(), vb.view(), mask))
            },
        )
        .collect()
}

/// PyTom's real-space CCC blocks of `tiles` (pairs enumerated here, computed in parallel);
/// inputs as in [`real_ccc_pairs`].
pub fn real_ccc_tiles(
    spectra: ArrayView4<Complex32>,
    wedges: ArrayView4<f32>,
    band: ArrayView3<f32>,
    mask: ArrayView3<f32>,
    tiles: &[Tile],
) -> Result<Vec<Array2<f32>>> {
    let pairs: Vec<(usize, usize)> = tiles
        .iter()
        .flat_map(|t| {
            (t.rows.0..t.rows.1).flat_map(move |i| (t.cols.0..t.cols.1).map(move |j| (i, j)))
        })
        .collect();
    let mut values = real_ccc_pairs(spectra, wedges, band, mask, &pairs)?.into_iter();
    Ok(tiles
        .iter()
        .map(|t| {
            let shape = (t.rows.1 - t.rows.0, t.cols.1 - t.cols.0);
            Array2::from_shape_fn(shape, |_| values.next().expect("one value per pair"))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn features(n: usize, m: usize) -> (Array2<f32>, Array2<f32>, Vec<f32>) {
        let f = Array::from_shape_fn((n, 2 * m), |(i, k)| ((i * 31 + k * 7) as f32 * 0.37).sin());
        // Real weights: zeros (a missing region) and values between 0.1 and 1.
        let w = Array::from_shape_fn((n, m), |(i, k)| match (i + k) % 5 {
            0 => 0.0,
            r => 0.1 + 0.2 * r as f32 + 0.01 * i as f32,
        });
        let herm = (0..m).map(|k| if k % 4 == 0 { 1.0 } else { 2.0 }).collect();
        (f, w, herm)
    }

    /// `Σ h·W_i·W_j·Re(F_i F_j*) / sqrt(Σ h·W_j²·|F_i|² · Σ h·W_i²·|F_j|²)`, in f64.
    fn direct(f: &Array2<f32>, w: &Array2<f32>, herm: &[f32], i: usize, j: usize) -> f64 {
        let m = w.ncols();
        let (mut num, mut di, mut dj) = (0.0, 0.0, 0.0);
        for k in 0..m {
            let (h, wi, wj) = (herm[k] as f64, w[[i, k]] as f64, w[[j, k]] as f64);
            let (ar, ai, br, bi) = (
                f[[i, k]] as f64,
                f[[i, m + k]] as f64,
                f[[j, k]] as f64,
                f[[j, m + k]] as f64,
            );
            num += h * wi * wj * (ar * br + ai * bi);
            di += h * wj * wj * (ar * ar + ai * ai);
            dj += h * wi * wi * (br * br + bi * bi);
        }
        num / (di * dj).sqrt()
    }

    #[test]
    fn tiles_equal_the_direct_formula() {
        // More particles than a strip, so that strips and the mirrored triangle are exercised.
        let (f, w, herm) = features(600, 12);
        let (x, p, q) = factors(f.view(), w.view(), &herm).unwrap();
        let tiles = [
            Tile {
                rows: (0, 300),
                cols: (250, 600),
            },
            Tile {
                rows: (300, 600),
                cols: (300, 600),
            },
        ];
        let all = (x.view(), p.view(), q.view());
        let blocks = ccc_tiles(all, None, &tiles).unwrap();
        for (t, b) in tiles.iter().zip(&blocks) {
            for i in t.rows.0..t.rows.1 {
                for j in t.cols.0..t.cols.1 {
                    let want = direct(&f, &w, &herm, i, j);
                    assert!((b[[i - t.rows.0, j - t.cols.0]] as f64 - want).abs() < 1e-5);
                }
            }
        }
        assert_eq!(blocks[1], blocks[1].t()); // a diagonal tile is exactly symmetric
        assert!((blocks[1][[7, 7]] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn landmark_columns_equal_the_same_columns_of_the_square_matrix() {
        let (f, w, herm) = features(9, 30);
        let (x, p, q) = factors(f.view(), w.view(), &herm).unwrap();
        let landmarks = [7, 2, 5];
        let pick = |a: &Array2<f32>| a.select(Axis(0), &landmarks);
        let (xl, pl, ql) = (pick(&x), pick(&p), pick(&q));
        let tile = [Tile {
            rows: (0, 9),
            cols: (0, 3),
        }];
        let block = ccc_tiles(
            (x.view(), p.view(), q.view()),
            Some((xl.view(), pl.view(), ql.view())),
            &tile,
        )
        .unwrap();
        for i in 0..9 {
            for (c, &j) in landmarks.iter().enumerate() {
                assert!((block[0][[i, c]] as f64 - direct(&f, &w, &herm, i, j)).abs() < 1e-5);
            }
        }
        let too_wide = [Tile {
            rows: (0, 9),
            cols: (0, 4),
        }];
        let all = (x.view(), p.view(), q.view());
        assert!(ccc_tiles(all, Some((xl.view(), pl.view(), ql.view())), &too_wide).is_err());
    }

    #[test]
    fn ncc_of_a_volume_with_itself_scaled_is_one() {
        let a = Array3::from_shape_fn((6, 6, 6), |(z, y, x)| ((z + 2 * y + 3 * x) as f32).sin());
        let b = a.mapv(|v| 3.0 * v + 1.0);
        let mask = Array3::ones((6, 6, 6));
        assert!((masked_ncc(a.view(), b.view(), mask.view()) - 1.0).abs() < 1e-6);
    }
}
