//! 3-D real FFTs of `[z, y, x]` volumes on the rFFT half grid `(nz, ny, nx / 2 + 1)`.
//!
//! Same layout and scaling as `numpy.fft.rfftn` / `irfftn`: the forward transform is
//! unnormalised, the inverse divides by `nz·ny·nx`. Plans are built once per shape and
//! shared; each thread keeps its own scratch, so a stack runs in parallel over volumes.

use std::sync::Arc;

use ndarray::{Array3, ArrayView3, ArrayView4, ArrayViewMut3, ArrayViewMut4, Zip};
use rayon::prelude::*;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use crate::error::{ensure, ensure_stack, Result};

/// FFT plans for one volume shape `(nz, ny, nx)`.
pub struct Fft3 {
    shape: [usize; 3],
    r2c: Arc<dyn RealToComplex<f32>>,
    c2r: Arc<dyn ComplexToReal<f32>>,
    fwd_y: Arc<dyn Fft<f32>>,
    inv_y: Arc<dyn Fft<f32>>,
    fwd_z: Arc<dyn Fft<f32>>,
    inv_z: Arc<dyn Fft<f32>>,
}

/// Per-thread working memory of an [`Fft3`].
pub struct Scratch {
    real_line: Vec<f32>,
    lines: Vec<Complex32>,
    work: Vec<Complex32>,
}

impl Fft3 {
    /// Plans for volumes of `shape = (nz, ny, nx)`; every extent must be ≥ 1.
    pub fn new(shape: [usize; 3]) -> Result<Self> {
        ensure(shape.iter().all(|&s| s > 0), || {
            format!("cannot transform an empty volume of shape {shape:?}")
        })?;
        let mut real = RealFftPlanner::<f32>::new();
        let mut cplx = FftPlanner::<f32>::new();
        Ok(Self {
            shape,
            r2c: real.plan_fft_forward(shape[2]),
            c2r: real.plan_fft_inverse(shape[2]),
            fwd_y: cplx.plan_fft_forward(shape[1]),
            inv_y: cplx.plan_fft_inverse(shape[1]),
            fwd_z: cplx.plan_fft_forward(shape[0]),
            inv_z: cplx.plan_fft_inverse(shape[0]),
        })
    }

    /// The real-space shape `(nz, ny, nx)`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The half-grid shape `(nz, ny, nx / 2 + 1)`.
    pub fn half_shape(&self) -> [usize; 3] {
        [self.shape[0], self.shape[1], self.shape[2] / 2 + 1]
    }

    /// Working memory for one thread.
    pub fn scratch(&self) -> Scratch {
        let [nz, ny, nx] = self.shape;
        let nh = nx / 2 + 1;
        let longest = [
            self.r2c.get_scratch_len(),
            self.c2r.get_scratch_len(),
            self.fwd_y.get_inplace_scratch_len(),
            self.inv_y.get_inplace_scratch_len(),
            self.fwd_z.get_inplace_scratch_len(),
            self.inv_z.get_inplace_scratch_len(),
        ];
        Scratch {
            real_line: vec![0.0; nx],
            lines: vec![Complex32::default(); nz * ny * nh],
            work: vec![Complex32::default(); longest.into_iter().max().unwrap_or(0)],
        }
    }

    fn check(&self, real: [usize; 3], half: [usize; 3]) -> Result<()> {
        ensure(real == self.shape && half == self.half_shape(), || {
            format!(
                "FFT of shape {:?} got a volume {real:?} and spectrum {half:?}",
                self.shape
            )
        })
    }

    /// `out = rfftn(input)`.
    pub fn forward(
        &self,
        input: ArrayView3<f32>,
        mut out: ArrayViewMut3<Complex32>,
        s: &mut Scratch,
    ) -> Result<()> {
        self.check(dims(&input.raw_dim()), dims(&out.raw_dim()))?;
        ensure(out.is_standard_layout(), || {
            "FFT output must be contiguous".into()
        })?;
        for (in_plane, mut out_plane) in input.outer_iter().zip(out.outer_iter_mut()) {
            for (row, mut out_row) in in_plane.outer_iter().zip(out_plane.outer_iter_mut()) {
                for (dst, &src) in s.real_line.iter_mut().zip(row.iter()) {
                    *dst = src;
                }
                let out_row = out_row.as_slice_mut().expect("contiguous spectrum row");
                // Lengths were checked above, so realfft cannot fail here.
                let _ = self
                    .r2c
                    .process_with_scratch(&mut s.real_line, out_row, &mut s.work);
            }
        }
        self.along_axis(&mut out, 1, &*self.fwd_y, s);
        self.along_axis(&mut out, 0, &*self.fwd_z, s);
        Ok(())
    }

    /// `out = irfftn(spectrum)`; `spectrum` is used as working memory and left changed.
    pub fn inverse(
        &self,
        mut spectrum: ArrayViewMut3<Complex32>,
        mut out: ArrayViewMut3<f32>,
        s: &mut Scratch,
    ) -> Result<()> {
        self.check(dims(&out.raw_dim()), dims(&spectrum.raw_dim()))?;
        ensure(spectrum.is_standard_layout(), || {
            "FFT input must be contiguous".into()
        })?;
        self.along_axis(&mut spectrum, 0, &*self.inv_z, s);
        self.along_axis(&mut spectrum, 1, &*self.inv_y, s);
        let [nz, ny, nx] = self.shape;
        let scale = 1.0 / (nz * ny * nx) as f32;
        for (mut spec_plane, mut out_plane) in spectrum.outer_iter_mut().zip(out.outer_iter_mut()) {
            for (mut spec_row, mut out_row) in
                spec_plane.outer_iter_mut().zip(out_plane.outer_iter_mut())
            {
                let spec_row = spec_row.as_slice_mut().expect("contiguous spectrum row");
                // numpy ignores the imaginary parts that a real signal cannot have.
                spec_row[0].im = 0.0;
                if nx.is_multiple_of(2) {
                    spec_row[nx / 2].im = 0.0;
                }
                let _ = self
                    .c2r
                    .process_with_scratch(spec_row, &mut s.real_line, &mut s.work);
                for (dst, &src) in out_row.iter_mut().zip(s.real_line.iter()) {
                    *dst = src * scale;
                }
            }
        }
        Ok(())
    }

    /// Complex FFT along `axis` (0 = z, 1 = y) of a contiguous half-grid spectrum, in place.
    /// The lines are gathered into contiguous memory (a transpose) so that rustfft runs
    /// them as one batch; for z the whole volume is one batch of `ny·nh` lines.
    fn along_axis(
        &self,
        spec: &mut ArrayViewMut3<Complex32>,
        axis: usize,
        fft: &dyn Fft<f32>,
        s: &mut Scratch,
    ) {
        let (nz, ny, nh) = spec.dim();
        let data = spec.as_slice_mut().expect("contiguous spectrum");
        let (blocks, len, width) = if axis == 0 {
            (1, nz, ny * nh)
        } else {
            (nz, ny, nh)
        };
        let lines = &mut s.lines[..len * width];
        for block in data.chunks_exact_mut(len * width).take(blocks) {
            transpose_into(block, lines, len, width);
            fft.process_with_scratch(lines, &mut s.work);
            transpose_into(lines, block, width, len);
        }
    }

    /// `out[i] = rfftn(stack[i])` for a stack `(N, nz, ny, nx)`, in parallel over volumes.
    pub fn forward_stack(
        &self,
        stack: ArrayView4<f32>,
        mut out: ArrayViewMut4<Complex32>,
    ) -> Result<()> {
        ensure_stack(
            "rfftn",
            stack.shape(),
            out.shape(),
            self.shape,
            self.half_shape(),
        )?;
        ensure(out.is_standard_layout(), || {
            "FFT output must be contiguous".into()
        })?;
        Zip::from(out.outer_iter_mut())
            .and(stack.outer_iter())
            .into_par_iter()
            .for_each_init(
                || self.scratch(),
                |s, (o, v)| self.forward(v, o, s).expect("shapes checked"),
            );
        Ok(())
    }

    /// `out[i] = irfftn(spectra[i])` for half grids `(N, nz, ny, nx / 2 + 1)`, in parallel.
    pub fn inverse_stack(
        &self,
        spectra: ArrayView4<Complex32>,
        mut out: ArrayViewMut4<f32>,
    ) -> Result<()> {
        ensure_stack(
            "irfftn",
            spectra.shape(),
            out.shape(),
            self.half_shape(),
            self.shape,
        )?;
        Zip::from(out.outer_iter_mut())
            .and(spectra.outer_iter())
            .into_par_iter()
            .for_each_init(
                || {
                    (
                        self.scratch(),
                        Array3::<Complex32>::zeros(self.half_shape()),
                    )
                },
                |(s, work), (o, spec)| {
                    work.assign(&spec);
                    self.inverse(work.view_mut(), o, s).expect("shapes checked");
                },
            );
        Ok(())
    }
}

/// `dst[j·rows + i] = src[i·cols + j]`: a `rows × cols` matrix, transposed.
fn transpose_into(src: &[Complex32], dst: &mut [Complex32], rows: usize, cols: usize) {
    for (i, row) in src.chunks_exact(cols).take(rows).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            dst[j * rows + i] = v;
        }
    }
}

fn dims(d: &ndarray::Ix3) -> [usize; 3] {
    [d[0], d[1], d[2]]
}

/// `rfftn` of one volume.
pub fn rfftn(volume: ArrayView3<f32>) -> Result<Array3<Complex32>> {
    let plan = Fft3::new(dims(&volume.raw_dim()))?;
    let mut out = Array3::zeros(plan.half_shape());
    plan.forward(volume, out.view_mut(), &mut plan.scratch())?;
    Ok(out)
}

/// `irfftn` of one half-grid spectrum, for a real volume of `shape`.
pub fn irfftn(spectrum: ArrayView3<Complex32>, shape: [usize; 3]) -> Result<Array3<f32>> {
    let plan = Fft3::new(shape)?;
    let mut work = spectrum.to_owned();
    let mut out = Array3::zeros(shape);
    plan.inverse(work.view_mut(), out.view_mut(), &mut plan.scratch())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array4, Axis};

    fn test_volume(shape: [usize; 3]) -> Array3<f32> {
        Array3::from_shape_fn(shape, |(z, y, x)| {
            ((z * 7 + y * 3 + x) as f32 * 0.37).sin() + (x as f32) * 0.01
        })
    }

    /// Direct DFT of one coefficient, in f64.
    fn dft(v: &Array3<f32>, k: [usize; 3]) -> (f64, f64) {
        let [nz, ny, nx] = dims(&v.raw_dim());
        let (mut re, mut im) = (0.0, 0.0);
        for ((z, y, x), &val) in v.indexed_iter() {
            let phase = -2.0
                * std::f64::consts::PI
                * ((k[0] * z) as f64 / nz as f64
                    + (k[1] * y) as f64 / ny as f64
                    + (k[2] * x) as f64 / nx as f64);
            re += val as f64 * phase.cos();
            im += val as f64 * phase.sin();
        }
        (re, im)
    }

    #[test]
    fn forward_matches_direct_dft() {
        for shape in [[4, 6, 8], [5, 3, 7]] {
            let v = test_volume(shape);
            let f = rfftn(v.view()).unwrap();
            for k in [
                [0, 0, 0],
                [1, 2, 3],
                [3, 1, 0],
                [shape[0] - 1, 0, shape[2] / 2],
            ] {
                let (re, im) = dft(&v, k);
                let got = f[[k[0], k[1], k[2]]];
                assert!((got.re as f64 - re).abs() < 1e-3, "{shape:?} {k:?}");
                assert!((got.im as f64 - im).abs() < 1e-3, "{shape:?} {k:?}");
            }
        }
    }

    #[test]
    fn round_trip_is_identity() {
        for shape in [[8, 8, 8], [5, 6, 7], [1, 4, 9]] {
            let v = test_volume(shape);
            let back = irfftn(rfftn(v.view()).unwrap().view(), shape).unwrap();
            let err = (&back - &v).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
            assert!(err < 1e-5, "{shape:?}: {err}");
        }
    }

    #[test]
    fn stack_equals_single() {
        let plan = Fft3::new([6, 6, 6]).unwrap();
        let stack = Array4::from_shape_fn((3, 6, 6, 6), |(i, z, y, x)| {
            ((i * 11 + z * 5 + y * 2 + x) as f32).cos()
        });
        let mut out = Array4::zeros((3, 6, 6, 4));
        plan.forward_stack(stack.view(), out.view_mut()).unwrap();
        for i in 0..3 {
            let single = rfftn(stack.index_axis(Axis(0), i)).unwrap();
            assert_eq!(out.index_axis(Axis(0), i), single);
        }
        let mut back = Array4::zeros(stack.raw_dim());
        plan.inverse_stack(out.view(), back.view_mut()).unwrap();
        let err = (&back - &stack)
            .mapv(f32::abs)
            .fold(0.0f32, |a, &b| a.max(b));
        assert!(err < 1e-5);
    }

    #[test]
    fn wrong_shape_is_an_error() {
        let plan = Fft3::new([4, 4, 4]).unwrap();
        let v = Array3::<f32>::zeros((4, 4, 5));
        let mut out = Array3::<Complex32>::zeros((4, 4, 3));
        assert!(plan
            .forward(v.view(), out.view_mut(), &mut plan.scratch())
            .is_err());
    }
}
