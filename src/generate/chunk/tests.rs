//! The chunk writer against parquet-rs: the same table written both ways must give the same
//! bytes, for every value type, both encodings and data that exercises dictionaries, their
//! fallback, page limits, NaN and signed zeros, boundary orders and several row groups.

use super::super::world::mix;
use super::super::writer::{Col, Encoding, Table};

/// A uniform number in [0, 1) from row `i` and `salt`.
fn u(i: usize, salt: u64) -> f64 {
    (mix(i as u64 ^ salt << 40) >> 11) as f64 / (1u64 << 53) as f64
}

/// A table of `rows` rows with columns of every type the chunk writer encodes, and a text
/// column it leaves to parquet-rs.
fn table(rows: usize, encoding: Encoding) -> Table<'static> {
    let mut t = Table::new(rows);
    t.encoded(encoding)
        .push("constant", Col::i64(|_| 195))
        .push("small", Col::i64(|i| (u(i, 1) * 6.0) as i64))
        .push(
            "unique",
            Col::i64(|i| 1_700_000_000_000 + (u(i, 2) * 1e11) as i64),
        )
        .push("ascending", Col::i64(|i| i as i64 * 3 - 7))
        .push("descending", Col::i64(|i| -(i as i64)))
        .push("medium", Col::i64(|i| (u(i, 3) * 40_000.0) as i64))
        .push("runs", Col::i64(|i| (i / 37 % 5) as i64))
        .push(
            "bursts",
            Col::i64(|i| match i / 16 % 2 {
                0 => 3,
                _ => (u(i, 12) * 4.0) as i64,
            }),
        )
        .push(
            "extremes",
            Col::i64(|i| match i % 5 {
                0 => i64::MIN,
                1 => i64::MAX,
                2 => 0,
                _ => mix(i as u64) as i64,
            }),
        )
        .push("text", Col::str(|i| format!("a{}", i % 17)))
        .push(
            "score",
            Col::f32(|i| match i % 97 {
                0 => f32::NAN,
                1 => -0.0,
                2 => 0.0,
                _ => (u(i, 4) * 10.0).round() as f32 / 10.0,
            }),
        )
        .push("noise", Col::f32(|i| u(i, 5) as f32))
        .push("nan", Col::f64(|_| f64::NAN))
        .push("zeros", Col::f64(|i| if i % 2 == 0 { 0.0 } else { -0.0 }))
        .push("variance", Col::f64(|i| (u(i, 6) - 0.3) * 1e6))
        .push("flag", Col::bool(|i| u(i, 7) < 0.1))
        .push("always", Col::bool(|_| true))
        .push("usd", Col::dec(|i| 10f64.powf(u(i, 8) * 9.0)))
        .push("net", Col::dec(|i| (u(i, 9) - 0.5) * 2e4))
        .push("tiny", Col::dec(|i| u(i, 10) * 0.5))
        .push(
            "hourly",
            Col::list_i64(24, |i, out| {
                out.extend((0..24).map(|k| (mix((i * 24 + k) as u64) % 4) as i64))
            }),
        )
        .push(
            "weekly",
            Col::list_i64(7, |i, out| {
                out.extend((0..7).map(|k| (u(i * 7 + k, 11) * 20.0) as i64))
            }),
        )
        .push(
            "ids",
            Col::list_i64(3, |i, out| out.extend((0..3).map(|k| (i * 3 + k) as i64))),
        );
    t
}

/// Writes `table(rows, encoding)` natively and through parquet-rs; the checksums must agree.
fn same_bytes(rows: usize, encoding: Encoding) {
    let dir = tempfile::tempdir().unwrap();
    let (_a, native) = table(rows, encoding)
        .write(&dir.path().join("native.parquet"), 3)
        .unwrap();
    let mut t = table(rows, encoding);
    let (_b, arrow) = t
        .through_arrow()
        .write(&dir.path().join("arrow.parquet"), 3)
        .unwrap();
    assert_eq!(native, arrow, "{rows} rows, {encoding:?}");
}

#[test]
fn small_tables_match_parquet_rs() {
    for rows in [1, 2, 7, 8, 9, 1000, 1025, 20_001] {
        same_bytes(rows, Encoding::Pandas);
        same_bytes(rows, Encoding::Fast);
    }
}

#[test]
fn chunks_pages_and_fallback_match_parquet_rs() {
    // Several 131,072-row chunks, 20,000-row pages, dictionaries that fall back.
    same_bytes(300_017, Encoding::Pandas);
    same_bytes(300_017, Encoding::Fast);
}

#[test]
fn row_groups_match_parquet_rs() {
    same_bytes(1_048_576 + 4_099, Encoding::Pandas);
    same_bytes(1_048_576 + 4_099, Encoding::Fast);
}
