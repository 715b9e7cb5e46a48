//! Thin PyO3 bindings of `tomoclass-core`: type conversion and GIL release only.
//! Core errors become `ValueError`; the Python layer adds file or parameter names.

use ndarray::ArrayViewMut4;
use numpy::{
    Complex32, Element, IntoPyArray, PyArray3, PyArray4, PyArrayMethods, PyReadonlyArray2,
    PyReadonlyArray3, PyReadonlyArray4,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tomoclass_core::error::{Error, Result as CoreResult};
use tomoclass_core::fft::Fft3;
use tomoclass_core::fourier::{self, Binning};
use tomoclass_core::interp::{self, Affine, Interpolation};
use tomoclass_core::rotation::{self, Mat3};
use tomoclass_core::wedge::{self, TiltWedge};

fn err(e: Error) -> PyErr {
    PyValueError::new_err(e.0)
}

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
        py.detach(|| fill(view)).map_err(err)?;
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

fn tilt_wedges(components: &[WedgeTuple]) -> Vec<TiltWedge> {
    components
        .iter()
        .map(|&(angle1, angle2, cutoff, smooth, tilt_axis)| TiltWedge {
            angle1,
            angle2,
            cutoff,
            smooth,
            tilt_axis,
        })
        .collect()
}

/// Wedge weights of many particles, `(N, n, n, n // 2 + 1)`: particle `i`'s wedge is the
/// product of the components `wedges[i]` seen through `rotations[i]`; threaded.
#[pyfunction]
fn wedge_stack<'py>(
    py: Python<'py>,
    n: usize,
    wedges: Vec<Vec<WedgeTuple>>,
    rotations: PyReadonlyArray3<'py, f64>,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let comps: Vec<Vec<TiltWedge>> = wedges.iter().map(|w| tilt_wedges(w)).collect();
    let rots = mat3_list(&rotations)?;
    fill_new_stack(py, [comps.len(), n, n, n / 2 + 1], |o| {
        wedge::wedge_stack(n, &comps, &rots, o)
    })
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
    m.add_function(wrap_pyfunction!(wedge_stack, m)?)?;
    Ok(())
}
