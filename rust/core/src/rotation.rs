//! Rotation matrices in PyTom's ZXZ convention.
//!
//! Angles are degrees. `R = Rz(z2) · Rx(x) · Rz(z1)` acts on column vectors `(x, y, z)`,
//! with right-handed `Rz(a) = [[c, -s, 0], [s, c, 0], [0, 0, 1]]`.

/// A 3×3 matrix acting on `(x, y, z)` column vectors, rows first.
pub type Mat3 = [[f64; 3]; 3];

/// The identity matrix.
pub const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

fn rz(deg: f64) -> Mat3 {
    let (s, c) = deg.to_radians().sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

fn rx(deg: f64) -> Mat3 {
    let (s, c) = deg.to_radians().sin_cos();
    [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]
}

/// Matrix product `a · b`.
pub fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

/// Transpose, which is the inverse of a rotation.
pub fn transpose(a: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = a[j][i];
        }
    }
    out
}

/// Matrix times vector.
pub fn apply(a: &Mat3, v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2])
}

/// PyTom rotation matrix of `<Rotation Z1 Z2 X>` (degrees): `Rz(z2) · Rx(x) · Rz(z1)`.
pub fn rotation_matrix(z1: f64, z2: f64, x: f64) -> Mat3 {
    matmul(&rz(z2), &matmul(&rx(x), &rz(z1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Mat3, b: &Mat3) -> bool {
        (0..3).all(|i| (0..3).all(|j| (a[i][j] - b[i][j]).abs() < 1e-12))
    }

    #[test]
    fn z1_of_90_turns_x_into_y() {
        let r = rotation_matrix(90.0, 0.0, 0.0);
        let v = apply(&r, [1.0, 0.0, 0.0]);
        assert!((v[0]).abs() < 1e-12 && (v[1] - 1.0).abs() < 1e-12 && v[2].abs() < 1e-12);
    }

    #[test]
    fn x_of_90_turns_y_into_z() {
        let v = apply(&rotation_matrix(0.0, 0.0, 90.0), [0.0, 1.0, 0.0]);
        assert!(v[0].abs() < 1e-12 && v[1].abs() < 1e-12 && (v[2] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn order_is_z1_then_x_then_z2() {
        // x → y by Z1, y → z by X, z stays under Z2.
        let v = apply(&rotation_matrix(90.0, 90.0, 90.0), [1.0, 0.0, 0.0]);
        assert!(v[0].abs() < 1e-12 && v[1].abs() < 1e-12 && (v[2] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn transpose_is_inverse() {
        let r = rotation_matrix(12.0, -70.0, 33.0);
        assert!(close(&matmul(&r, &transpose(&r)), &IDENTITY));
    }
}
