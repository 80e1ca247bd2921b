//! Unit tests of the address history: windows, worker counts, short runs, arriving dates.

use super::dataflow::*;
use super::*;
use arrow::array::AsArray;
use std::sync::Mutex;

type Rows = BTreeMap<NaiveDate, BTreeMap<String, [f64; 5]>>;

fn d(s: &str) -> NaiveDate {
    crate::dates::parse_date(s).unwrap()
}

/// A volume in USD as 10⁻¹⁸ USD units.
fn units(usd: f64) -> i128 {
    (usd * 1e18).round() as i128
}

/// A source over hand-made dates: `(days before base, address, volume)`; other dates have no batch.
fn source(base: NaiveDate, alerts: &[(u64, &str, f64)]) -> AlertSource {
    let mut by_date: BTreeMap<NaiveDate, Vec<(String, i128)>> = BTreeMap::new();
    for &(k, a, v) in alerts {
        by_date
            .entry(base - Days::new(k))
            .or_default()
            .push((a.to_string(), units(v)));
    }
    Arc::new(move |date, keep: &Keep| {
        Ok(by_date.get(&date).map(|alerts| {
            let kept = alerts.iter().filter(|(a, _)| keep.keeps(a));
            aggregate(kept.map(|(a, v)| (a.as_str(), *v)))
        }))
    })
}

fn run(src: AlertSource, dates: &[NaiveDate], workers: usize) -> Rows {
    run_with(src, dates, workers, true)
}

fn run_with(src: AlertSource, dates: &[NaiveDate], workers: usize, first: bool) -> Rows {
    let mut out = Rows::new();
    compute_with(src, dates, workers, first, false, &mut |date, r| {
        let b = r.map_err(|e| anyhow!(e))?;
        let addr = b.column(0).as_string::<i32>();
        let rows = out.entry(date).or_default();
        for i in 0..b.num_rows() {
            let v: Vec<f64> = (1..=5)
                .map(|c| {
                    b.column(c)
                        .as_primitive::<arrow::datatypes::Float64Type>()
                        .value(i)
                })
                .collect();
            rows.insert(addr.value(i).to_string(), v.try_into().unwrap());
        }
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn windows_end_before_the_date_and_count_as_defined() {
    let base = d("2025-06-30");
    let alerts = [
        // a: inside both windows at D−1 and D−7 (twice), only the long one at D−8 and D−30,
        // outside at D−31; its alert of D itself never counts for D.
        (0, "a", 1000.0),
        (1, "a", 10.0),
        (7, "a", 20.0),
        (7, "a", 20.0),
        (8, "a", 40.0),
        (30, "a", 80.0),
        (31, "a", 160.0),
        // b: alerted on D only.
        (0, "b", 3.0),
        // c: history but not alerted on D, so no row for D.
        (3, "c", 1.0),
        // g: alerted on D−1 and D with the same history on both (D−31 and D−8 leave as D−8 and D−1 enter).
        (31, "g", 5.0),
        (8, "g", 5.0),
        (1, "g", 5.0),
        (0, "g", 5.0),
    ];
    let prev = base - Days::new(1);
    let rows = run(source(base, &alerts), &[prev, base], 1);
    let at = &rows[&base];
    assert_eq!(at.keys().collect::<Vec<_>>(), ["a", "b", "g"]);
    assert_eq!(at["a"], [3.0, 50.0, 5.0, 170.0, 4.0]);
    assert_eq!(at["b"], [0.0; 5]);
    assert_eq!(at["g"], [1.0, 5.0, 2.0, 10.0, 2.0]);
    // D−1: windows D−8..D−2 and D−31..D−2.
    let before = &rows[&prev];
    assert_eq!(before.keys().collect::<Vec<_>>(), ["a", "g"]);
    assert_eq!(before["a"], [3.0, 80.0, 5.0, 320.0, 4.0]);
    assert_eq!(before["g"], at["g"]);
}

#[test]
fn volumes_add_up_exactly_whatever_the_order() {
    let base = d("2025-06-30");
    // In f64, 0.1 + 0.2 is 0.30000000000000004 and (1e16 + 1) - 1e16 is 0; the window
    // sums hold exact units, so neither order nor magnitudes change the result.
    let alerts = [
        (0, "a", 0.0),
        (1, "a", 0.1),
        (2, "a", 0.2),
        (3, "a", 1e16),
        (4, "a", 1.0),
        (5, "a", -1e16),
    ];
    let rows = run(source(base, &alerts), &[base], 2);
    assert_eq!(rows[&base]["a"][1], 1.3);
    // The same volumes on the window's days in the opposite order.
    let mut reversed = alerts;
    for k in 1..=5 {
        reversed[k].2 = alerts[6 - k].2;
    }
    let rows = run(source(base, &reversed), &[base], 1);
    assert_eq!(rows[&base]["a"][1], 1.3);
}

#[test]
fn a_date_without_batch_is_an_error_for_that_date_only() {
    let base = d("2025-06-30");
    let src = source(base, &[(2, "a", 1.0), (0, "a", 1.0)]);
    let mut got = BTreeMap::new();
    compute(src, &[base - Days::new(1), base], 2, &mut |date, r| {
        got.insert(date, r.map(|b| b.num_rows()));
        Ok(())
    })
    .unwrap();
    assert!(got[&(base - Days::new(1))]
        .as_ref()
        .unwrap_err()
        .contains("no batch"));
    assert_eq!(got[&base], Ok(1));
}

#[test]
fn an_unreadable_date_fails_alone_and_counts_as_no_alerts_in_windows() {
    let base = d("2025-06-30");
    let bad = base - Days::new(10);
    let src: AlertSource = Arc::new(move |date, _: &Keep| {
        if date == bad {
            bail!("alerts.parquet: corrupt")
        }
        Ok(Some(aggregate(vec![("a".to_string(), units(1.0))])))
    });
    let dates = [
        bad - Days::new(1),
        bad,
        bad + Days::new(1),
        base,
        base + Days::new(21),
    ];
    let mut got = BTreeMap::new();
    compute(src, &dates, 2, &mut |date, r| {
        got.insert(date, r.is_ok());
        Ok(())
    })
    .unwrap();
    let expected: BTreeMap<NaiveDate, bool> = [
        (dates[0], true),
        (dates[1], false),
        (dates[2], true),
        (dates[3], true),
        (dates[4], true),
    ]
    .into();
    assert_eq!(got, expected);
}

/// A pseudo-random month of alerts over a few addresses.
fn month(seed: u64) -> Vec<(u64, String, f64)> {
    let mut out = Vec::new();
    let mut x = seed;
    for k in 0..75u64 {
        out.push((k, "daily".to_string(), k as f64));
        for _ in 0..6 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if !(x >> 60).is_multiple_of(3) {
                out.push((
                    k,
                    format!("addr{}", (x >> 33) % 9),
                    ((x >> 20) % 1000) as f64 / 7.0,
                ));
            }
        }
    }
    out
}

fn src_of(base: NaiveDate, m: &[(u64, String, f64)]) -> AlertSource {
    let v: Vec<(u64, &str, f64)> = m.iter().map(|(k, a, v)| (*k, a.as_str(), *v)).collect();
    source(base, &v)
}

#[test]
fn worker_counts_give_identical_rows() {
    let base = d("2025-06-30");
    let m = month(3);
    let dates: Vec<NaiveDate> = (0..40).map(|k| base - Days::new(k)).collect();
    let one = run(src_of(base, &m), &dates, 1);
    assert_eq!(one.len(), 40);
    let two = run(src_of(base, &m), &dates, 2);
    let bits = |r: &Rows| -> Vec<(NaiveDate, String, [u64; 5])> {
        r.iter()
            .flat_map(|(d, rows)| {
                rows.iter()
                    .map(move |(a, v)| (*d, a.clone(), v.map(f64::to_bits)))
            })
            .collect()
    };
    assert_eq!(bits(&one), bits(&two));
}

#[test]
fn a_short_run_reading_only_its_addresses_gives_the_rows_of_a_long_one() {
    let base = d("2025-06-30");
    let m = month(7);
    let dates: Vec<NaiveDate> = (0..40).map(|k| base - Days::new(k)).collect();
    let long = run(src_of(base, &m), &dates, 1);
    // One and two requested dates: their windows are fed with their addresses' alerts only.
    for short in [vec![base], vec![base - Days::new(20), base]] {
        let rows = run(src_of(base, &m), &short, 2);
        for d in &short {
            assert_eq!(rows[d], long[d], "{d}");
        }
    }
    let read: Arc<Mutex<Vec<usize>>> = Arc::default();
    let seen = read.clone();
    let inner = src_of(base, &m);
    let counting: AlertSource = Arc::new(move |date, keep: &Keep| {
        let r = inner(date, keep)?;
        let alerts = r
            .as_ref()
            .map_or(0, |d| d.aggs.iter().map(|a| a.1.parts().0).sum());
        seen.lock().unwrap().push(alerts as usize);
        Ok(r)
    });
    let _ = run(counting, &[base], 1);
    let all: usize = m.iter().filter(|r| r.0 <= 30).count();
    let kept: usize = read.lock().unwrap().iter().skip(1).sum();
    assert!(kept < all, "the history dates kept {kept} of {all} alerts");
}

#[test]
fn dates_arriving_one_by_one_are_read_in_date_order_with_the_same_rows() {
    let base = d("2025-06-30");
    let m = month(7);
    let short = [base - Days::new(20), base - Days::new(3), base];
    let expected = run(src_of(base, &m), &short, 1);
    let read: Arc<Mutex<Vec<NaiveDate>>> = Arc::default();
    let seen = read.clone();
    let inner = src_of(base, &m);
    let logging: AlertSource = Arc::new(move |date, keep: &Keep| {
        seen.lock().unwrap().push(date);
        inner(date, keep)
    });
    assert_eq!(run_with(logging, &short, 1, false), expected);
    let read = read.lock().unwrap().clone();
    let mut sorted = read.clone();
    sorted.sort();
    assert_eq!(
        read, sorted,
        "a requested date was read before earlier ones"
    );
}

#[test]
fn changing_one_date_changes_only_the_dates_whose_windows_hold_it() {
    let base = d("2025-06-30");
    let m = month(5);
    let dates: Vec<NaiveDate> = (0..75).map(|k| base - Days::new(k)).collect();
    let before = run(src_of(base, &m), &dates, 2);
    // Change the volume of one alert of date `changed`.
    let k = 50;
    let changed = base - Days::new(k);
    let mut m2 = m.clone();
    let i = m2.iter().position(|r| r.0 == k).unwrap();
    m2[i].2 += 1.0;
    let after = run(src_of(base, &m2), &dates, 2);
    let differ: Vec<NaiveDate> = before
        .keys()
        .copied()
        .filter(|d| before[d] != after[d])
        .collect();
    // The changed address is alerted every date, so exactly the 30 dates after change.
    let expected: Vec<NaiveDate> = dependent_dates(changed).skip(1).collect();
    assert_eq!(differ, expected);
    // Within a date, only the changed address's row moves.
    for d in &differ {
        let moved: Vec<&String> = before[d]
            .iter()
            .filter(|(a, v)| after[d].get(*a) != Some(v))
            .map(|(a, _)| a)
            .collect();
        assert_eq!(moved, [&m2[i].1]);
    }
}

#[test]
fn wide_integers_round_trip_and_order_like_i128() {
    let vs = [
        i128::MIN,
        -(1 << 70) - 3,
        -1,
        0,
        1,
        u64::MAX as i128 + 1,
        i128::MAX,
    ];
    for w in vs.windows(2) {
        assert_eq!((Wide::new(w[0]).get(), Wide::new(w[1]).get()), (w[0], w[1]));
        assert!(Wide::new(w[0]) < Wide::new(w[1]));
    }
    assert_eq!(std::mem::align_of::<Agg>(), 8);
}

#[test]
fn window_dates_are_the_thirty_before() {
    let w: Vec<NaiveDate> = window_dates(d("2025-03-01")).collect();
    assert_eq!(w.len(), 30);
    assert_eq!(w[0], d("2025-01-30"));
    assert_eq!(w[29], d("2025-02-28"));
    let dep: Vec<NaiveDate> = dependent_dates(d("2025-02-28")).collect();
    assert_eq!((dep[0], dep[30]), (d("2025-02-28"), d("2025-03-30")));
}

#[test]
fn a_dates_names_ascend_bytewise_whatever_their_first_eight_bytes() {
    let names = [
        "abcdefghZ",
        "abcdefgh",
        "ab",
        "ab\u{1}",
        "abcdefghA",
        "b",
        "",
        "abcdefgh\u{0}x",
        "ab",
    ];
    let day = aggregate(names.iter().map(|a| (*a, 1)));
    let got: Vec<&str> = day.names.iter().map(|n| n.0.as_str()).collect();
    let mut want: Vec<&str> = names.to_vec();
    want.sort();
    want.dedup();
    assert_eq!(got, want);
    for (a, k) in &day.names {
        assert_eq!(*k, key(a));
    }
    let keys: Vec<u128> = day.aggs.iter().map(|r| r.0).collect();
    let mut sorted: Vec<u128> = day.names.iter().map(|n| n.1).collect();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn a_dates_rows_join_each_key_and_name_an_address_without_one_or_with_two() {
    let stats = |n: i32| {
        let mut w = [Agg::default(); 6];
        w[0] = Agg::new(n, 0, 0);
        Stats::of(&w, &[0; super::flows::COUNTS], false)
    };
    let names = |n: &[(&str, u128)]| n.iter().map(|(a, k)| (a.to_string(), *k)).collect();
    let got = vec![(2, stats(5)), (1, stats(3)), (7, stats(9))];
    let rows = rows_of(names(&[("a", 2), ("b", 1)]), got.clone()).unwrap();
    let alerts: Vec<f64> = rows
        .column(1)
        .as_primitive::<arrow::datatypes::Float64Type>()
        .values()
        .to_vec();
    assert_eq!(alerts, [5.0, 3.0]);
    let err = rows_of(names(&[("a", 2), ("c", 3), ("d", 4)]), got.clone()).unwrap_err();
    assert_eq!(err, "history features: no row for address c");
    let twice = [got, vec![(1, stats(4))]].concat();
    let err = rows_of(names(&[("a", 2), ("b", 1)]), twice).unwrap_err();
    assert_eq!(err, "history features: two rows for address b");
}
