//! Thin PyO3 bindings of `tomoclass-core`: type conversion and GIL release only.
//! Core errors become `ValueError`; the Python layer adds file or parameter names.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use ndarray::{Array2, ArrayViewMut4};
use numpy::{
    Complex32, Complex64, Element, IntoPyArray, PyArray1, PyArray2, PyArray3, PyArray4,
    PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyReadonlyArray4,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tomoclass_core::average;
use tomoclass_core::ccc::{self, Tile};
use tomoclass_core::error::{Error, Result as CoreResult};
use tomoclass_core::features::{Band, Geometry, Preprocess};
use tomoclass_core::fft::Fft3;
use tomoclass_core::fourier::{self, Binning};
use tomoclass_core::interp::{self, Affine, Interpolation};
use tomoclass_core::interrupt;
use tomoclass_core::mco;
use tomoclass_core::rotation::{self, Mat3};
use tomoclass_core::wedge::{self, Optics, Sampling, Tilt, TiltSeries, TiltWedge, WeightGrid};

fn err(e: Error) -> PyErr {
    PyValueError::new_err(e.0)
}

/// Run `work` without the GIL on a worker thread while this (the calling) thread looks for
/// signals every 50 ms: on Ctrl-C the core's loops are asked to stop (see
/// `tomoclass_core::interrupt`) and the signal's exception (KeyboardInterrupt) is raised as
/// soon as they have, instead of after the whole call.
fn detached<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> CoreResult<T> + Send,
{
    interrupt::clear();
    let mut signal = None;
    let outcome = py.detach(|| {
        std::thread::scope(|scope| {
            let (done, finished) = mpsc::channel();
            let worker = scope.spawn(move || {
                let result = work();
                let _ = done.send(());
                result
            });
            while let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(POLL) {
                if signal.is_none() {
                    if let Err(e) = Python::attach(|py| py.check_signals()) {
                        interrupt::request();
                        signal = Some(e);
                    }
                }
            }
            worker.join()
        })
    });
    interrupt::clear();
    match (signal, outcome) {
        (Some(e), _) => Err(e),
        (None, Ok(result)) => result.map_err(err),
        (None, Err(panic)) => std::panic::resume_unwind(panic),
    }
}

/// How often a running core call looks for Ctrl-C.
const POLL: Duration = Duration::from_millis(50);

/// Run `fill` without the GIL on a new numpy stack of `shape`, which it must write entirely.
fn fill_new_stack<'py, T, F>(
    py: Python<'py>,
    shape: [usize; 4],
    fill: F,
) -> PyResult<Bound<'py, PyArray4<T>>>
where
    T: Element + Send,
    F: FnOnce(ArrayViewMut4<'_, T>) -> CoreResult<()> + Send,
{
    // SAFETY: uninitialised memory is never read: `fill` writes every element (or fails,
    // and then the array is dropped unseen).
    let out = unsafe { PyArray4::<T>::new(py, shape, false) };
    {
        let mut guard = out.readwrite();
        let view = guard.as_array_mut();
        detached(py, || fill(view))?;
    }
    Ok(out)
}

fn interpolation(order: u8) -> PyResult<Interpolation> {
    match order {
        1 => Ok(Interpolation::Linear),
        3 => Ok(Interpolation::Cubic),
        _ => Err(PyValueError::new_err(format!(
            "interpolation order must be 1 (trilinear) or 3 (cubic B-spline), got {order}"
        ))),
    }
}

fn mat3_list(a: &PyReadonlyArray3<f64>) -> PyResult<Vec<Mat3>> {
    let a = a.as_array();
    if a.shape()[1..] != [3, 3] {
        return Err(PyValueError::new_err(format!(
            "rotation matrices must have shape (N, 3, 3), got {:?}",
            a.shape()
        )));
    }
    Ok(a.outer_iter()
        .map(|m| [0, 1, 2].map(|i| [0, 1, 2].map(|j| m[[i, j]])))
        .collect())
}

/// Number of threads the core uses (rayon; set `RAYON_NUM_THREADS` to change it).
#[pyfunction]
fn thread_count() -> usize {
    rayon::current_num_threads()
}

/// PyTom rotation matrix `Rz(z2)·Rx(x)·Rz(z1)` of angles in degrees.
#[pyfunction]
fn rotation_matrix(z1: f64, z2: f64, x: f64) -> Mat3 {
    rotation::rotation_matrix(z1, z2, x)
}

/// `rfftn` of every volume of a float32 stack `(N, nz, ny, nx)`, threaded over volumes.
#[pyfunction]
fn rfftn_stack<'py>(
    py: Python<'py>,
    stack: PyReadonlyArray4<'py, f32>,
) -> PyResult<Bound<'py, PyArray4<Complex32>>> {
    let s = stack.as_array();
    let (n, nz, ny, nx) = s.dim();
    let plan = Fft3::new([nz, ny, nx]).map_err(err)?;
    fill_new_stack(py, [n, nz, ny, nx / 2 + 1], |o| plan.forward_stack(s, o))
}

/// `irfftn` of every half grid of a complex64 stack, to volumes of `shape`.
#[pyfunction]
fn irfftn_stack<'py>(
    py: Python<'py>,
    spectra: PyReadonlyArray4<'py, Complex32>,
    shape: [usize; 3],
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let s = spectra.as_array();
    let plan = Fft3::new(shape).map_err(err)?;
    let [nz, ny, nx] = shape;
    fill_new_stack(py, [s.shape()[0], nz, ny, nx], |o| plan.inverse_stack(s, o))
}

/// Resample each volume of a stack by its own `(matrix, offset)`; threaded over volumes.
#[pyfunction]
fn transform_stack<'py>(
    py: Python<'py>,
    stack: PyReadonlyArray4<'py, f32>,
    matrices: PyReadonlyArray3<'py, f64>,
    offsets: PyReadonlyArray2<'py, f64>,
    order: u8,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let interp = interpolation(order)?;
    let offsets = offsets.as_array();
    if offsets.ncols() != 3 {
        return Err(PyValueError::new_err("offsets must have shape (N, 3)"));
    }
    let affines: Vec<Affine> = mat3_list(&matrices)?
        .into_iter()
        .zip(offsets.outer_iter())
        .map(|(matrix, o)| Affine {
            matrix,
            offset: [o[0], o[1], o[2]],
        })
        .collect();
    let s = stack.as_array();
    let (n, nz, ny, nx) = s.dim();
    fill_new_stack(py, [n, nz, ny, nx], |o| {
        interp::transform_stack(s, &affines, interp, o)
    })
}

/// 1 on the half grid of `shape` where `lowest ≤ |k| ≤ highest`, DC excluded.
#[pyfunction]
fn band_mask(
    py: Python<'_>,
    shape: [usize; 3],
    lowest: f64,
    highest: f64,
) -> Bound<'_, PyArray3<f32>> {
    fourier::band_mask(shape, lowest, highest).into_pyarray(py)
}

/// Fourier binning of every cubic volume of a stack `(N, n, n, n)` by `factor`
/// (values kept, Nyquist planes zeroed); threaded over volumes.
#[pyfunction]
fn bin_stack<'py>(
    py: Python<'py>,
    stack: PyReadonlyArray4<'py, f32>,
    factor: usize,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let s = stack.as_array();
    let binning = Binning::new(s.shape()[1], factor).map_err(err)?;
    let m = binning.binned_size();
    fill_new_stack(py, [s.shape()[0], m, m, m], |o| binning.apply_stack(s, o))
}

/// One single-tilt component: `(angle1, angle2, cutoff, smooth, tilt_axis_matrix)`.
type WedgeTuple = (f64, f64, f64, f64, Mat3);

/// How a particle was sampled (`tomoclass-core`'s `Sampling`): built once from Python, checked,
/// and shared by every particle that was sampled the same way.
#[pyclass(name = "Sampling", frozen)]
struct PySampling(Arc<Sampling>);

impl PySampling {
    fn checked(sampling: Sampling) -> PyResult<Self> {
        sampling.validate().map_err(err)?;
        Ok(Self(Arc::new(sampling)))
    }
}

#[pymethods]
impl PySampling {
    /// The product of single-tilt wedges, each `(angle1, angle2, cutoff, smooth, tilt axis
    /// matrix)` (degrees, Fourier voxels); none: full sampling.
    #[staticmethod]
    fn wedges(components: Vec<WedgeTuple>) -> PyResult<Self> {
        let wedges = components
            .into_iter()
            .map(|(angle1, angle2, cutoff, smooth, tilt_axis)| TiltWedge {
                angle1,
                angle2,
                cutoff,
                smooth,
                tilt_axis,
            })
            .collect();
        Self::checked(Sampling::Wedges(wedges))
    }

    /// A tilt series: per tilt the unit normal `(x, y, z)` of its central plane, exposure
    /// (e/Å²), defocus (Å, or NaN for no CTF), amplitude scale and B-factor (Å²); optics
    /// `(kV, Cs mm, amplitude contrast)`; Å per voxel and the box size of the particles.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    fn tilt_series(
        normals: PyReadonlyArray2<'_, f64>,
        exposure: Vec<f64>,
        defocus: Vec<f64>,
        scale: Vec<f64>,
        bfactor: Vec<f64>,
        optics: (f64, f64, f64),
        pixel_size: f64,
        box_size: usize,
    ) -> PyResult<Self> {
        let normals = normals.as_array();
        let count = normals.nrows();
        if normals.ncols() != 3
            || [exposure.len(), defocus.len(), scale.len(), bfactor.len()] != [count; 4]
        {
            return Err(PyValueError::new_err(format!(
                "tilt series: normals {:?} and per-tilt values of lengths {}, {}, {}, {} do not match",
                normals.shape(),
                exposure.len(),
                defocus.len(),
                scale.len(),
                bfactor.len()
            )));
        }
        let tilts = (0..count)
            .map(|i| Tilt {
                normal: [normals[[i, 0]], normals[[i, 1]], normals[[i, 2]]],
                exposure: exposure[i],
                defocus: (!defocus[i].is_nan()).then_some(defocus[i]),
                scale: scale[i],
                bfactor: bfactor[i],
            })
            .collect();
        let (voltage, cs, amplitude_contrast) = optics;
        Self::checked(Sampling::Tilts(TiltSeries {
            tilts,
            optics: Optics {
                voltage,
                cs,
                amplitude_contrast,
            },
            pixel_size,
            box_size,
        }))
    }

    /// A weight volume on the half grid `(n, n, n // 2 + 1)` of the particle box (DC at 0),
    /// with an optional filter of the particle's own spectrum on the same grid.
    #[staticmethod]
    #[pyo3(signature = (weight, data_filter=None))]
    fn grid(
        weight: PyReadonlyArray3<'_, f32>,
        data_filter: Option<PyReadonlyArray3<'_, f32>>,
    ) -> PyResult<Self> {
        let weight = weight.as_array().to_owned();
        let filter = data_filter.map(|g| g.as_array().to_owned());
        let grid = WeightGrid::new(weight, filter).map_err(err)?;
        Ok(Self(Arc::new(Sampling::Grid(grid))))
    }
}

fn shared(samplings: &[PyRef<'_, PySampling>]) -> Vec<Arc<Sampling>> {
    samplings.iter().map(|s| s.0.clone()).collect()
}

/// Weights of many particles, `(N, n, n, n // 2 + 1)`: particle `i`'s sampling seen through
/// `rotations[i]`; threaded.
#[pyfunction]
fn weight_stack<'py>(
    py: Python<'py>,
    n: usize,
    samplings: Vec<PyRef<'py, PySampling>>,
    rotations: PyReadonlyArray3<'py, f64>,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let samplings = shared(&samplings);
    let refs: Vec<&Sampling> = samplings.iter().map(|s| s.as_ref()).collect();
    let rots = mat3_list(&rotations)?;
    fill_new_stack(py, [refs.len(), n, n, n / 2 + 1], |o| {
        wedge::weight_stack(n, &refs, &rots, o)
    })
}

/// Two float32 matrices returned together.
type MatrixPair<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f32>>);
type FactorArrays<'py> = (
    PyReadonlyArray2<'py, f32>,
    PyReadonlyArray2<'py, f32>,
    PyReadonlyArray2<'py, f32>,
);

/// Particle geometries from rotation matrices `(N, 3, 3)`, shifts `(N, 3)` and samplings.
fn geometries(
    rotations: &PyReadonlyArray3<f64>,
    shifts: &PyReadonlyArray2<f64>,
    samplings: &[PyRef<'_, PySampling>],
) -> PyResult<Vec<Geometry>> {
    let rots = mat3_list(rotations)?;
    let shifts = shifts.as_array();
    if shifts.shape() != [rots.len(), 3] || samplings.len() != rots.len() {
        return Err(PyValueError::new_err(format!(
            "{} rotations, shifts of shape {:?} and {} samplings do not match",
            rots.len(),
            shifts.shape(),
            samplings.len()
        )));
    }
    Ok(rots
        .into_iter()
        .zip(shifts.outer_iter())
        .zip(shared(samplings))
        .map(|((rotation, s), sampling)| Geometry {
            rotation,
            shift: [s[0], s[1], s[2]],
            sampling,
        })
        .collect())
}

/// Flat half-grid indices and Hermitian weights of the band `lowest ≤ |k| ≤ highest`
/// (DC excluded) of an `m³` box.
#[pyfunction]
fn band_voxels(
    py: Python<'_>,
    m: usize,
    lowest: f64,
    highest: f64,
) -> (Bound<'_, PyArray1<usize>>, Bound<'_, PyArray1<f32>>) {
    let band = Band::new(m, lowest, highest);
    (band.flat.into_pyarray(py), band.herm.into_pyarray(py))
}

/// Bin → align → mask → rFFT of particles of one box size (`tomoclass-core`'s `Preprocess`),
/// built once per run and applied to chunks of particles.
#[pyclass(name = "Preprocess", frozen)]
struct PyPreprocess(Preprocess);

#[pymethods]
impl PyPreprocess {
    /// For particles of `box_size³`, binned by `binning`, masked by `mask` (binned size),
    /// interpolated with `order` 1 or 3.
    #[new]
    fn new(
        box_size: usize,
        binning: usize,
        mask: PyReadonlyArray3<'_, f32>,
        order: u8,
    ) -> PyResult<Self> {
        let pre = Preprocess::new(
            box_size,
            binning,
            mask.as_array().to_owned(),
            interpolation(order)?,
        );
        Ok(Self(pre.map_err(err)?))
    }

    /// Spectral features of a stack `(N, n, n, n)`: `(F, W)` with `F = rFFT(mask·align(bin(v)))`
    /// on the band `(lowest, highest)` where the particle sampled (`W > 0`), as `[Re | Im]`
    /// rows `(N, 2M)`, and the weights `W` `(N, M)`. Threaded over particles.
    fn features<'py>(
        &self,
        py: Python<'py>,
        stack: PyReadonlyArray4<'py, f32>,
        rotations: PyReadonlyArray3<'py, f64>,
        shifts: PyReadonlyArray2<'py, f64>,
        samplings: Vec<PyRef<'py, PySampling>>,
        band: (f64, f64),
    ) -> PyResult<MatrixPair<'py>> {
        let s = stack.as_array();
        let geo = geometries(&rotations, &shifts, &samplings)?;
        let band = Band::new(self.0.binned_size(), band.0, band.1);
        let (f, w) = detached(py, || {
            let mut f = Array2::zeros((geo.len(), 2 * band.len()));
            let mut w = Array2::zeros((geo.len(), band.len()));
            self.0
                .band_features(s, &geo, &band, f.view_mut(), w.view_mut())
                .map(|_| (f, w))
        })?;
        Ok((f.into_pyarray(py), w.into_pyarray(py)))
    }

    /// Half-grid spectra `rFFT(mask·align(bin(v)))` of a stack, `(N, m, m, m // 2 + 1)`.
    fn spectra<'py>(
        &self,
        py: Python<'py>,
        stack: PyReadonlyArray4<'py, f32>,
        rotations: PyReadonlyArray3<'py, f64>,
        shifts: PyReadonlyArray2<'py, f64>,
        samplings: Vec<PyRef<'py, PySampling>>,
    ) -> PyResult<Bound<'py, PyArray4<Complex32>>> {
        let s = stack.as_array();
        let geo = geometries(&rotations, &shifts, &samplings)?;
        let m = self.0.binned_size();
        fill_new_stack(py, [geo.len(), m, m, m / 2 + 1], |o| {
            self.0.spectra(s, &geo, o)
        })
    }

    /// Per-class sums `(Σ W·F, Σ W², counts, reach)` on the half grid, `(K, m, m, m // 2 + 1)`
    /// complex128 and float64, of the particles of a stack with `labels` in `0..classes`;
    /// the reach of a class is `Σ max(W)²` over its particles.
    #[allow(clippy::too_many_arguments)]
    fn class_sums<'py>(
        &self,
        py: Python<'py>,
        stack: PyReadonlyArray4<'py, f32>,
        rotations: PyReadonlyArray3<'py, f64>,
        shifts: PyReadonlyArray2<'py, f64>,
        samplings: Vec<PyRef<'py, PySampling>>,
        labels: Vec<usize>,
        classes: usize,
    ) -> PyResult<ClassSumsPy<'py>> {
        let s = stack.as_array();
        let geo = geometries(&rotations, &shifts, &samplings)?;
        let sums = detached(py, || {
            average::class_sums(&self.0, s, &geo, &labels, classes)
        })?;
        Ok((
            sums.fw.into_pyarray(py),
            sums.w.into_pyarray(py),
            sums.counts,
            sums.reach,
        ))
    }
}

/// Class sums returned to Python: `(Σ W·F, Σ W², counts, reach Σ max(W)²)`.
type ClassSumsPy<'py> = (
    Bound<'py, PyArray4<Complex64>>,
    Bound<'py, PyArray4<f64>>,
    Vec<usize>,
    Vec<f64>,
);

/// One class average `irFFT(Σ W·F / max(Σ W², floor·reach) · band)` of an `m³` box.
#[pyfunction]
fn average_from_sums<'py>(
    py: Python<'py>,
    fw: PyReadonlyArray3<'py, Complex64>,
    w: PyReadonlyArray3<'py, f64>,
    reach: f64,
    floor: f64,
    band: PyReadonlyArray3<'py, f32>,
    m: usize,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let (fw, w, band) = (fw.as_array(), w.as_array(), band.as_array());
    let out = detached(py, || {
        let mut out = ndarray::Array3::zeros((m, m, m));
        average::average_from_sums(fw, w, reach, floor, band, m, out.view_mut()).map(|_| out)
    })?;
    Ok(out.into_pyarray(py))
}

/// Three float32 matrices returned together.
type MatrixTriple<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
);

/// CCC factors `(X, P, Q)` of features `F` `(N, 2M)`, weights `W` `(N, M)` and Hermitian
/// weights `h` `(M)`.
#[pyfunction]
fn ccc_factors<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f32>,
    w: PyReadonlyArray2<'py, f32>,
    herm: PyReadonlyArray1<'py, f32>,
) -> PyResult<MatrixTriple<'py>> {
    let (f, w, h) = (f.as_array(), w.as_array(), herm.as_array());
    let h = h.to_vec();
    let (x, p, q) = detached(py, || ccc::factors(f, w, &h))?;
    Ok((x.into_pyarray(py), p.into_pyarray(py), q.into_pyarray(py)))
}

fn to_tiles(tiles: Vec<(usize, usize, usize, usize)>) -> Vec<Tile> {
    tiles
        .into_iter()
        .map(|(r0, r1, c0, c1)| Tile {
            rows: (r0, r1),
            cols: (c0, c1),
        })
        .collect()
}

/// CCC blocks of `tiles` `[(row0, row1, col0, col1), …]` from factors `X`, `P`, `Q`; threaded
/// over tiles. With `cols` (the factors of another set, e.g. Nyström landmarks), columns
/// index that set instead.
#[pyfunction]
#[pyo3(signature = (x, p, q, tiles, cols=None))]
fn ccc_tiles<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    p: PyReadonlyArray2<'py, f32>,
    q: PyReadonlyArray2<'py, f32>,
    tiles: Vec<(usize, usize, usize, usize)>,
    cols: Option<FactorArrays<'py>>,
) -> PyResult<Vec<Bound<'py, PyArray2<f32>>>> {
    let rows = (x.as_array(), p.as_array(), q.as_array());
    let other = cols
        .as_ref()
        .map(|(x, p, q)| (x.as_array(), p.as_array(), q.as_array()));
    let tiles = to_tiles(tiles);
    let blocks = detached(py, || ccc::ccc_tiles(rows, other, &tiles))?;
    Ok(blocks.into_iter().map(|b| b.into_pyarray(py)).collect())
}

/// PyTom's real-space CCC blocks of `tiles` `[(row0, row1, col0, col1), …]` from masked
/// spectra and wedges (both `(N, m, m, m//2+1)`), the band (0/1, half grid) and the mask
/// `(m, m, m)`; threaded over pairs.
#[pyfunction]
fn real_ccc_tiles<'py>(
    py: Python<'py>,
    spectra: PyReadonlyArray4<'py, Complex32>,
    wedges: PyReadonlyArray4<'py, f32>,
    band: PyReadonlyArray3<'py, f32>,
    mask: PyReadonlyArray3<'py, f32>,
    tiles: Vec<(usize, usize, usize, usize)>,
) -> PyResult<Vec<Bound<'py, PyArray2<f32>>>> {
    let (s, w, b, m) = (
        spectra.as_array(),
        wedges.as_array(),
        band.as_array(),
        mask.as_array(),
    );
    let tiles = to_tiles(tiles);
    let blocks = detached(py, || ccc::real_ccc_tiles(s, w, b, m, &tiles))?;
    Ok(blocks.into_iter().map(|b| b.into_pyarray(py)).collect())
}

/// MCO class averages `(K, 2M)` (`[Re | Im]`) of features `f`, wedges `w` and `labels`
/// (`0..classes`) with the wedge-sum `floor`; also the class sizes.
#[pyfunction]
fn mco_class_means<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f32>,
    w: PyReadonlyArray2<'py, f32>,
    labels: Vec<usize>,
    classes: usize,
    floor: f64,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Vec<usize>)> {
    let (f, w) = (f.as_array(), w.as_array());
    let (means, counts) = detached(py, || mco::class_means(f, w, &labels, classes, floor))?;
    Ok((means.into_pyarray(py), counts))
}

/// MCO scores `(N, K)` of every particle against every class average, inside its wedge.
#[pyfunction]
fn mco_scores<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f32>,
    w: PyReadonlyArray2<'py, f32>,
    herm: PyReadonlyArray1<'py, f32>,
    means: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let (f, w, means) = (f.as_array(), w.as_array(), means.as_array());
    let herm = herm.as_array().to_vec();
    let out = detached(py, || mco::scores(f, w, &herm, means))?;
    Ok(out.into_pyarray(py))
}

/// Scores `(N, K)` and best shifts `(N, K, 3)`.
type ScoresAndShifts<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray3<i32>>);

/// MCO scores with translation tolerance: the peak over shifts `|t| ≤ max_shift` (voxels)
/// for every particle and class, and the best shifts `(N, K, 3)` as `(x, y, z)`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn mco_shift_scores<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f32>,
    w: PyReadonlyArray2<'py, f32>,
    herm: PyReadonlyArray1<'py, f32>,
    flat: Vec<usize>,
    m: usize,
    means: PyReadonlyArray2<'py, f32>,
    max_shift: f64,
) -> PyResult<ScoresAndShifts<'py>> {
    let (f, w, means) = (f.as_array(), w.as_array(), means.as_array());
    let herm = herm.as_array().to_vec();
    let (scores, shifts) = detached(py, || {
        mco::shift_scores(f, w, &herm, &flat, m, means, max_shift)
    })?;
    Ok((scores.into_pyarray(py), shifts.into_pyarray(py)))
}

/// An accepted jump as Python sees it: `(particle, from, to, loss)`.
type JumpTuple = (usize, usize, usize, f32);

/// Annealed reassignment of `round` (see `tomoclass_core::mco::anneal`): new labels and the
/// accepted jumps as `(particle, from, to, loss)`.
#[pyfunction]
fn mco_anneal<'py>(
    py: Python<'py>,
    scores: PyReadonlyArray2<'py, f32>,
    labels: Vec<usize>,
    temperature: f64,
    criterion: &str,
    seed: u64,
    round: u64,
) -> PyResult<(Vec<usize>, Vec<JumpTuple>)> {
    let criterion = match criterion {
        "metropolis" => mco::Criterion::Metropolis,
        "threshold" => mco::Criterion::Threshold,
        other => {
            return Err(PyValueError::new_err(format!(
                "criterion must be metropolis or threshold, got {other:?}"
            )))
        }
    };
    let s = scores.as_array();
    let (new, jumps) = detached(py, || {
        mco::anneal(s, &labels, temperature, criterion, seed, round)
    })?;
    let jumps = jumps
        .into_iter()
        .map(|j| (j.particle, j.from, j.to, j.loss))
        .collect();
    Ok((new, jumps))
}

/// Uniform numbers in `[0, 1)` for indices `0..n` of the counter stream `(seed, round)`.
#[pyfunction]
fn counter_uniform(py: Python<'_>, seed: u64, round: u64, n: u64) -> Bound<'_, PyArray1<f64>> {
    let values: Vec<f64> = (0..n).map(|i| mco::uniform(seed, round, i)).collect();
    values.into_pyarray(py)
}

/// A float32 matrix as comma-separated text (bytes), one line per row; threaded.
#[pyfunction]
fn format_csv<'py>(py: Python<'py>, rows: PyReadonlyArray2<'py, f32>) -> Bound<'py, PyBytes> {
    let r = rows.as_array();
    let text = py.detach(|| tomoclass_core::csv::format_rows(r));
    PyBytes::new(py, &text)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(thread_count, m)?)?;
    m.add_function(wrap_pyfunction!(rotation_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(rfftn_stack, m)?)?;
    m.add_function(wrap_pyfunction!(irfftn_stack, m)?)?;
    m.add_function(wrap_pyfunction!(transform_stack, m)?)?;
    m.add_function(wrap_pyfunction!(band_mask, m)?)?;
    m.add_function(wrap_pyfunction!(bin_stack, m)?)?;
    m.add_class::<PySampling>()?;
    m.add_function(wrap_pyfunction!(weight_stack, m)?)?;
    m.add_function(wrap_pyfunction!(band_voxels, m)?)?;
    m.add_class::<PyPreprocess>()?;
    m.add_function(wrap_pyfunction!(average_from_sums, m)?)?;
    m.add_function(wrap_pyfunction!(ccc_factors, m)?)?;
    m.add_function(wrap_pyfunction!(ccc_tiles, m)?)?;
    m.add_function(wrap_pyfunction!(real_ccc_tiles, m)?)?;
    m.add_function(wrap_pyfunction!(format_csv, m)?)?;
    m.add_function(wrap_pyfunction!(mco_class_means, m)?)?;
    m.add_function(wrap_pyfunction!(mco_scores, m)?)?;
    m.add_function(wrap_pyfunction!(counter_uniform, m)?)?;
    m.add_function(wrap_pyfunction!(mco_anneal, m)?)?;
    m.add_function(wrap_pyfunction!(mco_shift_scores, m)?)?;
    Ok(())
}
