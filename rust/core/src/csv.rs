//! Plain-text matrices: PyTom's `correlation_matrix.csv` is comma-separated rows.

use std::io::Write;

use ndarray::ArrayView2;
use rayon::prelude::*;

/// `rows` as comma-separated text, one line per row; each value is written in the shortest
/// form that reads back to the same f32. Rows are formatted in parallel.
pub fn format_rows(rows: ArrayView2<f32>) -> Vec<u8> {
    let lines: Vec<Vec<u8>> = rows
        .outer_iter()
        .into_par_iter()
        .map(|row| {
            let mut line = Vec::with_capacity(row.len() * 12);
            for (k, v) in row.iter().enumerate() {
                if k > 0 {
                    line.push(b',');
                }
                write!(line, "{v}").expect("writing to memory");
            }
            line.push(b'\n');
            line
        })
        .collect();
    lines.concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn rows_round_trip_through_text() {
        let m = array![[1.0f32, -0.25, 1e-7], [0.333_333_34, 0.0, 7.5]];
        let text = String::from_utf8(format_rows(m.view())).unwrap();
        assert_eq!(text.lines().count(), 2);
        let back: Vec<f32> = text
            .split(['\n', ','])
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(back, m.iter().copied().collect::<Vec<_>>());
    }
}
