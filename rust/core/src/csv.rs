//! Plain-text matrices: PyTom's `correlation_matrix.csv` is comma-separated rows.

use std::io::Write;

use ndarray::ArrayView2;
use rayon::prelude::*;

/// `rows` as comma-separated text, one line per row; each value is written in the shortest
/// form that reads back to the same f32, byte for byte as `Display` writes it. Rows are
/// formatted in parallel.
pub fn format_rows(rows: ArrayView2<f32>) -> Vec<u8> {
    rows_with(rows, push_f32)
}

/// `rows` as comma-separated lines, each value appended by `push`.
fn rows_with(rows: ArrayView2<f32>, push: impl Fn(&mut Vec<u8>, f32) + Sync) -> Vec<u8> {
    let lines: Vec<Vec<u8>> = rows
        .outer_iter()
        .into_par_iter()
        .map(|row| {
            let mut line = Vec::with_capacity(row.len() * 12);
            for (k, &v) in row.iter().enumerate() {
                if k > 0 {
                    line.push(b',');
                }
                push(&mut line, v);
            }
            line.push(b'\n');
            line
        })
        .collect();
    lines.concat()
}

/// Appends `v` exactly as `write!(out, "{v}")` would (files must not change), at several
/// times its speed: ryu finds the same shortest digits and mostly even the same text.
fn push_f32(out: &mut Vec<u8>, v: f32) {
    if !v.is_finite() || v == 0.0 {
        // NaN, ±inf, ±0: rare, and `Display` itself is the reference.
        write!(out, "{v}").expect("writing to memory");
        return;
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(v).as_bytes();
    let (m, k) = odd_significand(v);
    // With more than 14 binary fraction digits, |v| < 512 is no integer (no ".0" to drop) and
    // its exact decimal expansion is too long to be a tie (see `halfway_above`); from 1e-5 up
    // ryu writes no exponent either, so its text is `Display`'s. So are most correlations.
    if k < -14 && v.abs() >= 1e-5 {
        out.extend_from_slice(text);
        return;
    }
    // Otherwise ryu wrote "-12.5", "0.00125", "1250.0", "1.25e-7" or "1e30": take its
    // significant digits and the power of ten of the last one, and lay them out again.
    let (mantissa, mut exp) = match text.iter().position(|&b| b == b'e') {
        Some(e) => (&text[..e], ascii_i32(&text[e + 1..])),
        None => (text, 0),
    };
    let mut digits = [0u8; 16];
    let mut n = 0;
    let mut after_point = false;
    for &b in mantissa {
        match b {
            b'-' => {}
            b'.' => after_point = true,
            _ => {
                if n > 0 || b != b'0' {
                    digits[n] = b;
                    n += 1;
                }
                exp -= i32::from(after_point);
            }
        }
    }
    while digits[n - 1] == b'0' {
        n -= 1;
        exp += 1;
    }
    let digits = &mut digits[..n];
    if halfway_above(m, k, digits, exp) {
        // ryu rounds this tie to even, `Display` away from zero; an even last digit never carries.
        digits[n - 1] += 1;
    }

    if v < 0.0 {
        out.push(b'-');
    }
    let int_len = n as i32 + exp; // digits before the decimal point
    if exp >= 0 {
        out.extend_from_slice(digits);
        out.resize(out.len() + exp as usize, b'0');
    } else if int_len > 0 {
        let (int, frac) = digits.split_at(int_len as usize);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    } else {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-int_len) as usize, b'0');
        out.extend_from_slice(digits);
    }
}

/// (m, k) with |v| = m·2^k and m odd, for finite nonzero `v`.
fn odd_significand(v: f32) -> (u32, i32) {
    let bits = v.to_bits() & 0x7fff_ffff;
    let biased = (bits >> 23) as i32;
    let m = if biased == 0 {
        bits
    } else {
        bits & 0x7f_ffff | 1 << 23
    };
    let zeros = m.trailing_zeros();
    (m >> zeros, biased.max(1) - 150 + zeros as i32)
}

/// Whether |v| = m·2^k is exactly halfway between `digits`·10^`exp` and the next
/// `digits`-long value above, i.e. equals t·10^(exp−1) with t = 10·digits + 5. That is
/// (t·5^(exp−1))·2^(exp−1) with t odd, so equality needs k = exp − 1 and equal odd parts;
/// as m < 2^24 and t < 10^10 (at most 9 digits), this happens only for −14 ≤ k ≤ 9.
fn halfway_above(m: u32, k: i32, digits: &[u8], exp: i32) -> bool {
    let f = exp - 1;
    if k != f {
        return false;
    }
    let m = u64::from(m);
    let t = digits
        .iter()
        .fold(0u64, |t, &d| t * 10 + u64::from(d - b'0'))
        * 10
        + 5;
    match 5u64.checked_pow(f.unsigned_abs()) {
        Some(p) if f >= 0 => t.checked_mul(p) == Some(m),
        Some(p) => m.checked_mul(p) == Some(t),
        None => false,
    }
}

/// ryu's exponent, e.g. "-7" or "30".
fn ascii_i32(s: &[u8]) -> i32 {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("ryu writes a decimal exponent")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};
    use std::time::Instant;

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

    /// The writer `format_rows` replaced: the reference text, and the speed to beat.
    fn display_rows(rows: ArrayView2<f32>) -> Vec<u8> {
        rows_with(rows, |line, v| write!(line, "{v}").unwrap())
    }

    /// splitmix64: a seeded, dependency-free source of test values.
    fn random_u64s(seed: u64, n: usize) -> impl Iterator<Item = u64> {
        (0..n as u64).map(move |i| {
            let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    /// Asserts `push_f32` writes every value as `Display` does, split over threads for speed;
    /// returns how many are ties, on which ryu's own digits differ from `Display`'s.
    fn assert_like_display(values: &[f32]) -> usize {
        values
            .par_chunks(1 << 16)
            .map(|chunk| {
                let (mut new, mut old, mut ties) = (Vec::new(), Vec::new(), 0);
                for &v in chunk {
                    new.clear();
                    old.clear();
                    push_f32(&mut new, v);
                    write!(old, "{v}").unwrap();
                    assert_eq!(
                        new,
                        old,
                        "{v:e} (bits {:#010x}): {:?} instead of {:?}",
                        v.to_bits(),
                        String::from_utf8_lossy(&new),
                        String::from_utf8_lossy(&old)
                    );
                    // Counted where `halfway_above` allows ties (the assert checks everywhere);
                    // there ryu writes no exponent, so only ".0" differs when its digits agree.
                    if v.is_finite() && v != 0.0 && (-14..=9).contains(&odd_significand(v).1) {
                        let mut buf = ryu::Buffer::new();
                        let ryu = buf.format_finite(v).as_bytes();
                        ties += usize::from(ryu.strip_suffix(b".0").unwrap_or(ryu) != old);
                    }
                }
                ties
            })
            .sum()
    }

    #[test]
    fn csv_values_are_written_as_display_writes_them() {
        let bits = |u: u64| f32::from_bits(u as u32);
        // Random bit patterns: every binade, subnormals, NaN payloads.
        let mut values: Vec<f32> = random_u64s(1, 3_000_000).map(bits).collect();
        // Correlations: full-precision values in [-1, 1].
        values.extend(random_u64s(2, 1_000_000).map(|u| (u as f64 / 2f64.powi(63) - 1.0) as f32));
        // Ties only exist among values with few binary fraction digits: random patterns with
        // all but the top 1..=24 significant bits cleared, and quarter-integers up to 2^26.
        values.extend(random_u64s(3, 2_000_000).map(|u| {
            let keep = 1 + (u >> 40) % 24;
            bits(u & (u64::MAX << (24 - keep)))
        }));
        values.extend(random_u64s(4, 1_000_000).map(|u| (u % (1 << 28)) as f32 / 4.0));
        // Powers of two and ten, their neighbours, and specials.
        let mut edges: Vec<f32> = (-149..=127).map(|e| 2f64.powi(e) as f32).collect();
        edges.extend((-45..=38).map(|e| format!("1e{e}").parse::<f32>().unwrap()));
        edges.extend([
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::EPSILON,
            f32::from_bits(1),
            1.0,
            0.0,
        ]);
        for v in edges {
            for d in -2i32..=2 {
                let near = f32::from_bits(v.to_bits().wrapping_add_signed(d));
                values.extend([near, -near]);
            }
        }
        let ties = assert_like_display(&values);
        assert!(ties > 100, "only {ties} ties among the values");
    }

    #[test]
    fn csv_ties_round_away_from_zero_as_display_does() {
        // Exactly 3460691.25, 2^-12 = 0.000244140625 and 0.251953125: ryu rounds these ties
        // to even (…2), `Display` away from zero (…3).
        for (bits, text) in [
            (0x4a53_394d, "3460691.3"),
            (0x3980_0000, "0.00024414063"),
            (0x3e81_0000, "0.25195313"),
        ] {
            let mut out = Vec::new();
            push_f32(&mut out, f32::from_bits(bits));
            push_f32(&mut out, -f32::from_bits(bits));
            assert_eq!(out, format!("{text}-{text}").as_bytes());
        }
        let tie = f32::from_bits(0x4a53_394d);
        let m = array![
            [0.0f32, -0.0, 1e-7, 1e30, f32::NAN],
            [1.0, -f32::INFINITY, tie, 0.5, -1.0]
        ];
        assert_eq!(format_rows(m.view()), display_rows(m.view()));
    }

    /// All 2^32 patterns against `Display`, 14 minutes on 2 threads:
    /// `cargo test --release csv_exhaustive -- --ignored --nocapture`. Last run: all equal;
    /// 2^23 of them are ties, from ±2^-12 to ±2^22.
    #[test]
    #[ignore]
    fn csv_exhaustive_against_display() {
        let ties: usize = (0..=u16::MAX)
            .into_par_iter()
            .map(|high| {
                let values: Vec<f32> = (0..=u16::MAX)
                    .map(|low| f32::from_bits(u32::from(high) << 16 | u32::from(low)))
                    .collect();
                assert_like_display(&values)
            })
            .sum();
        println!("all 2^32 bit patterns are written as Display writes them; {ties} are ties");
    }

    /// `cargo test --release csv_throughput -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn csv_throughput() {
        let n = 2000;
        let mut u = random_u64s(5, n * n);
        let m = Array2::from_shape_fn((n, n), |(i, j)| {
            let r = u.next().unwrap();
            if i == j {
                1.0
            } else {
                (r as f64 / 2f64.powi(63) - 1.0) as f32
            }
        });
        let mb_per_s = |f: &dyn Fn(ArrayView2<f32>) -> Vec<u8>| {
            let mut best = f64::MAX;
            let mut len = 0;
            for _ in 0..3 {
                let t = Instant::now();
                len = f(m.view()).len();
                best = best.min(t.elapsed().as_secs_f64());
            }
            (len as f64 / 1e6, len as f64 / 1e6 / best)
        };
        let (mb, new) = mb_per_s(&format_rows);
        let (_, old) = mb_per_s(&display_rows);
        assert_eq!(format_rows(m.view()), display_rows(m.view()));
        println!(
            "{mb:.1} MB on {} threads: ryu {new:.0} MB/s, Display {old:.0} MB/s ({:.1}x)",
            rayon::current_num_threads(),
            new / old
        );
    }
}
