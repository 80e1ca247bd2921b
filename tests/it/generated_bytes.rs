//! The generator's output bytes, pinned: the SHA-256 of every file of small days of both
//! worlds, as the generator wrote them before its Parquet encoder was replaced (commit
//! 2d86b1d, `pipeline generate --seed 7 --alerts-per-day 30000`). Two dates of the classic
//! world (before and on the drift date; money flows in two row groups) and one of the
//! laundering world. A change to these bytes must be deliberate: update the sums with it.

use aml_pipeline::generate::{generate_profile, GenerateOptions, Laundering, Profile};
use aml_pipeline::io::sha256_file;
use std::path::Path;

fn opts(out: &Path, dates: &[&str]) -> GenerateOptions {
    GenerateOptions {
        out: out.to_path_buf(),
        network: "torus".into(),
        dates: dates
            .iter()
            .map(|d| aml_pipeline::dates::parse_date(d).unwrap())
            .collect(),
        window_days: 195,
        alerts_per_day: 30_000,
        seed: 7,
    }
}

/// Generates `dates` of `profile` and compares every file's SHA-256 with `pinned`.
fn check(profile: Profile, dates: &[&str], pinned: &[(&str, &str)]) {
    let d = tempfile::tempdir().unwrap();
    generate_profile(&opts(d.path(), dates), &profile, None, &mut |_| {}).unwrap();
    for (file, sum) in pinned {
        let got = sha256_file(&d.path().join("torus").join(file)).unwrap();
        assert_eq!(&got, sum, "{} of the {} world", file, profile.name());
    }
    let files = walk(d.path()).len();
    assert_eq!(files, pinned.len(), "files written");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn classic_bytes_are_unchanged() {
    check(
        Profile::Classic,
        &["2025-11-13", "2025-11-14"],
        &[
            (
                "2025-11-13/195/META.json",
                "1402027da9846aadd8235fa00b77f4ee97bfc14f34c42dc234efa3e2c013d532",
            ),
            (
                "2025-11-13/195/alerts.parquet",
                "91a2fb5e0c7e452eac57f4066621ad7f87cf69c1756e04ca52bf8d4c49091733",
            ),
            (
                "2025-11-13/195/clusters.parquet",
                "63a834c0f9a77a8284d7463663f3d7bdc4beabf2cd27610c24e0cadd6066b6b0",
            ),
            (
                "2025-11-13/195/features.parquet",
                "c6c2146f5d64c6c3eca7b463ccca1ff5d6afec7fe1a9e8496cdab1fab78c1ee7",
            ),
            (
                "2025-11-13/195/money_flows.parquet",
                "521c55e7b8b234493998fbc67e97c4626448faea4c12c6266a8a6efdfbdcf613",
            ),
            (
                "2025-11-14/195/META.json",
                "be84af838a78c8ffa2fd9851dfb0d5c0738b82b277bc8cf707a4929b1a291b9f",
            ),
            (
                "2025-11-14/195/alerts.parquet",
                "6410b741341a8c8e868bdb3b6d693ed7453fbe5ac92e534ee90f34fc8a6d4284",
            ),
            (
                "2025-11-14/195/clusters.parquet",
                "1cfffa9aa40aa1bd4fbc01cade574a852bf4052232030d355dc2709e5a924254",
            ),
            (
                "2025-11-14/195/features.parquet",
                "7a964151fa7b1e7cd444bbd2641466c83040d0dfde08802ffad982204a394d20",
            ),
            (
                "2025-11-14/195/money_flows.parquet",
                "9dfa54efc20d35b4781bb37a841144740681298d2ec2a2f8354d04a11e970807",
            ),
            (
                "address_labels.parquet",
                "88f2e3d643c4700a37511b1886a378ab3763a557b8ad89b8120bd2151b3fdf8c",
            ),
            (
                "ground_truth.parquet",
                "f2de4ecf10ec862aad8aafaeef8493c4122e0d2cbc7f9f137faa02cc7f384621",
            ),
        ],
    );
}

#[test]
fn laundering_bytes_are_unchanged() {
    check(
        Profile::Laundering(Laundering::default()),
        &["2025-11-14"],
        &[
            (
                "2025-11-14/195/META.json",
                "5971811bb1111dde813c3b4a5c5f430b192039ed12e2f7e48dfc4de60077ab0d",
            ),
            (
                "2025-11-14/195/alerts.parquet",
                "3591b0531e7f0914bf1f84d364e0e33aaf8d534f92c75d4d93e22255564c85bb",
            ),
            (
                "2025-11-14/195/clusters.parquet",
                "0db024a9c1464b8910b3050b42fb90987ed1ba49856797180042ceb521f0ab31",
            ),
            (
                "2025-11-14/195/features.parquet",
                "08130db1a90f3ea64f065ebf8f335798c247fa112231292f2c298079841b4b8e",
            ),
            (
                "2025-11-14/195/money_flows.parquet",
                "846ff1340872b74ef3a3c6eb19c5eb774cf781f86b57695f4d03403fe7026bd9",
            ),
            (
                "address_labels.parquet",
                "db6f391e575f5d6a58eb963a1e71e843c16db2167c61e2e0aade48a4440523b6",
            ),
            (
                "ground_truth.parquet",
                "3a1d6e13316ed478b32d8c101faf0d77a8ee0f5b231376882827ea8a6639d788",
            ),
        ],
    );
}
