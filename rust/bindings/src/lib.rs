//! Thin PyO3 bindings of `tomoclass-core`: type conversion and GIL release only.

use pyo3::prelude::*;
use tomoclass_core::rotation;

/// PyTom rotation matrix `Rz(z2)·Rx(x)·Rz(z1)` of angles in degrees, as nested lists.
#[pyfunction]
fn rotation_matrix(z1: f64, z2: f64, x: f64) -> [[f64; 3]; 3] {
    rotation::rotation_matrix(z1, z2, x)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rotation_matrix, m)?)?;
    Ok(())
}
