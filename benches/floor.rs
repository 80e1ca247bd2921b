//! The decode floor: the time to merely read the columns the pipeline needs from one date's
//! batch with arrow-rs, nothing else. `benches/e2e.sh` runs it on its generated day;
//! by hand: `cargo bench --bench floor -- input/torus/2025-10-01/195`.

use aml_pipeline::io::ParquetSource;
use aml_pipeline::stages::decode;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let dir: PathBuf = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .expect("usage: cargo bench --bench floor -- BATCH_DIR");
    let needs: [(&str, Vec<&str>); 4] = [
        ("alerts.parquet", decode::ALERT_COLUMNS.to_vec()),
        ("features.parquet", decode::feature_columns()),
        ("clusters.parquet", decode::CLUSTER_COLUMNS.to_vec()),
        ("money_flows.parquet", decode::FLOW_COLUMNS.to_vec()),
    ];
    let mut best = f64::INFINITY;
    let mut rows = 0;
    for _ in 0..5 {
        let t = Instant::now();
        rows = 0;
        for (file, cols) in &needs {
            let source = ParquetSource::open(&dir.join(file)).expect("readable batch");
            for batch in source
                .read(cols, aml_pipeline::io::STREAM_ROWS)
                .expect("readable columns")
            {
                rows += batch.expect("readable batch").num_rows();
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("decode floor: {best:.3} s ({rows} rows, best of 5)");
}
