//! Thin PyO3 bindings of `tomoclass-core`: type conversion and GIL release only.
//! Core errors become `ValueError`; the Python layer adds file or parameter names.

use ndarray::Array2;
use numpy::{
    Complex32, IntoPyArray, PyArray3, PyArray4, PyReadonlyArray2, PyReadonlyArray3,
    PyReadonlyArray4,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tomoclass_core::error::Error;
use tomoclass_core::fft::{self, Fft3};
use tomoclass_core::fourier::{self, Binning};
use tomoclass_core::interp::{self, Affine, Interpolation};
use tomoclass_core::rotation::{self, Mat3};
use tomoclass_core::wedge::{self, TiltWedge};

fn err(e: Error) -> PyErr {
    PyValueError::new_err(e.0)
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

fn mat3(rows: &[f64]) -> Mat3 {
    [0, 1, 2].map(|i| [0, 1, 2].map(|j| rows[3 * i + j]))
}

fn mat3_list(a: PyReadonlyArray3<f64>) -> PyResult<Vec<Mat3>> {
    let a = a.as_array();
    if a.shape()[1..] != [3, 3] {
        return Err(PyValueError::new_err(format!(
            "rotation matrices must have shape (N, 3, 3), got {:?}",
            a.shape()
        )));
    }
    Ok(a.outer_iter()
        .map(|m| mat3(&m.iter().copied().collect::<Vec<_>>()))
        .collect())
}

/// PyTom rotation matrix `Rz(z2)·Rx(x)·Rz(z1)` of angles in degrees.
#[pyfunction]
fn rotation_matrix(z1: f64, z2: f64, x: f64) -> [[f64; 3]; 3] {
    rotation::rotation_matrix(z1, z2, x)
}

/// `numpy.fft.rfftn` of a float32 `[z, y, x]` volume (complex64 half grid).
#[pyfunction]
fn rfftn<'py>(
    py: Python<'py>,
    volume: PyReadonlyArray3<'py, f32>,
) -> PyResult<Bound<'py, PyArray3<Complex32>>> {
    let v = volume.as_array();
    Ok(py.detach(|| fft::rfftn(v)).map_err(err)?.into_pyarray(py))
}

/// `numpy.fft.irfftn` of a complex64 half grid to a real volume of `shape`.
#[pyfunction]
fn irfftn<'py>(
    py: Python<'py>,
    spectrum: PyReadonlyArray3<'py, Complex32>,
    shape: [usize; 3],
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let s = spectrum.as_array();
    Ok(py
        .detach(|| fft::irfftn(s, shape))
        .map_err(err)?
        .into_pyarray(py))
}

/// `rfftn` of every volume of a float32 stack `(N, nz, ny, nx)`, threaded over volumes.
#[pyfunction]
fn rfftn_stack<'py>(
    py: Python<'py>,
    stack: PyReadonlyArray4<'py, f32>,
) -> PyResult<Bound<'py, PyArray4<Complex32>>> {
    let s = stack.as_array();
    let shape = [s.shape()[1], s.shape()[2], s.shape()[3]];
    let out = py
        .detach(|| Fft3::new(shape)?.forward_stack(s))
        .map_err(err)?;
    Ok(out.into_pyarray(py))
}

/// `irfftn` of every half grid of a complex64 stack, to volumes of `shape`.
#[pyfunction]
fn irfftn_stack<'py>(
    py: Python<'py>,
    spectra: PyReadonlyArray4<'py, Complex32>,
    shape: [usize; 3],
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let s = spectra.as_array();
    let out = py
        .detach(|| Fft3::new(shape)?.inverse_stack(s))
        .map_err(err)?;
    Ok(out.into_pyarray(py))
}

/// `out(p) = volume(matrix·p + offset)`, `p = (x, y, z)` voxels; order 1 or 3.
#[pyfunction]
fn affine_transform<'py>(
    py: Python<'py>,
    volume: PyReadonlyArray3<'py, f32>,
    matrix: PyReadonlyArray2<'py, f64>,
    offset: [f64; 3],
    order: u8,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let interp = interpolation(order)?;
    let m = matrix.as_array();
    if m.shape() != [3, 3] {
        return Err(PyValueError::new_err("matrix must be 3×3"));
    }
    let affine = Affine {
        matrix: mat3(&m.iter().copied().collect::<Vec<_>>()),
        offset,
    };
    let v = volume.as_array();
    let out = py
        .detach(|| {
            let mut out = ndarray::Array3::zeros(v.raw_dim());
            interp::affine_transform(v, &affine, interp, out.view_mut()).map(|_| out)
        })
        .map_err(err)?;
    Ok(out.into_pyarray(py))
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
    let offsets: Array2<f64> = offsets.as_array().to_owned();
    if offsets.ncols() != 3 {
        return Err(PyValueError::new_err("offsets must have shape (N, 3)"));
    }
    let affines: Vec<Affine> = mat3_list(matrices)?
        .into_iter()
        .zip(offsets.outer_iter())
        .map(|(matrix, o)| Affine {
            matrix,
            offset: [o[0], o[1], o[2]],
        })
        .collect();
    let s = stack.as_array();
    let out = py
        .detach(|| interp::transform_stack(s, &affines, interp))
        .map_err(err)?;
    Ok(out.into_pyarray(py))
}

/// Cubic B-spline coefficients (mirror boundary), as `scipy.ndimage.spline_filter`.
#[pyfunction]
fn spline_coefficients<'py>(
    py: Python<'py>,
    volume: PyReadonlyArray3<'py, f32>,
) -> Bound<'py, PyArray3<f32>> {
    let v = volume.as_array();
    py.detach(|| interp::spline_coefficients(v))
        .into_pyarray(py)
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

/// Fourier binning of a cubic volume by `factor` (values kept, Nyquist planes zeroed).
#[pyfunction]
fn bin_volume<'py>(
    py: Python<'py>,
    volume: PyReadonlyArray3<'py, f32>,
    factor: usize,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let v = volume.as_array();
    let n = v.shape()[0];
    if v.shape() != [n, n, n] {
        return Err(PyValueError::new_err(format!(
            "binning needs a cubic volume, got {:?}",
            v.shape()
        )));
    }
    let out = py
        .detach(|| Binning::new(n, factor)?.apply(v))
        .map_err(err)?;
    Ok(out.into_pyarray(py))
}

/// Fourier binning of every cubic volume of a stack `(N, n, n, n)`, threaded.
#[pyfunction]
fn bin_stack<'py>(
    py: Python<'py>,
    stack: PyReadonlyArray4<'py, f32>,
    factor: usize,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let s = stack.as_array();
    let out = py
        .detach(|| Binning::new(s.shape()[1], factor)?.apply_stack(s))
        .map_err(err)?;
    Ok(out.into_pyarray(py))
}

type WedgeTuple = (f64, f64, f64, f64, [[f64; 3]; 3]);

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

/// Wedge weights `W(R·k)` on the half grid of an `n³` box. `components` is a list of
/// `(angle1, angle2, cutoff, smooth, tilt_axis_matrix)` whose weights multiply.
#[pyfunction]
fn wedge_weights<'py>(
    py: Python<'py>,
    n: usize,
    components: Vec<WedgeTuple>,
    rotation: [[f64; 3]; 3],
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let comps = tilt_wedges(&components);
    let out = py
        .detach(|| wedge::wedge_weights(n, &comps, &rotation))
        .map_err(err)?;
    Ok(out.into_pyarray(py))
}

/// Wedge weights of many particles: `wedges[i]` (as in `wedge_weights`) seen through
/// `rotations[i]`, shape `(N, n, n, n // 2 + 1)`; threaded over particles.
#[pyfunction]
fn wedge_stack<'py>(
    py: Python<'py>,
    n: usize,
    wedges: Vec<Vec<WedgeTuple>>,
    rotations: PyReadonlyArray3<'py, f64>,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let comps: Vec<Vec<TiltWedge>> = wedges.iter().map(|w| tilt_wedges(w)).collect();
    let rots = mat3_list(rotations)?;
    let out = py
        .detach(|| wedge::wedge_stack(n, &comps, &rots))
        .map_err(err)?;
    Ok(out.into_pyarray(py))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rotation_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(rfftn, m)?)?;
    m.add_function(wrap_pyfunction!(irfftn, m)?)?;
    m.add_function(wrap_pyfunction!(rfftn_stack, m)?)?;
    m.add_function(wrap_pyfunction!(irfftn_stack, m)?)?;
    m.add_function(wrap_pyfunction!(affine_transform, m)?)?;
    m.add_function(wrap_pyfunction!(transform_stack, m)?)?;
    m.add_function(wrap_pyfunction!(spline_coefficients, m)?)?;
    m.add_function(wrap_pyfunction!(band_mask, m)?)?;
    m.add_function(wrap_pyfunction!(bin_volume, m)?)?;
    m.add_function(wrap_pyfunction!(bin_stack, m)?)?;
    m.add_function(wrap_pyfunction!(wedge_weights, m)?)?;
    m.add_function(wrap_pyfunction!(wedge_stack, m)?)?;
    Ok(())
}
