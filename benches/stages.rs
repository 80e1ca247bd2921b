//! Per-stage benches on one generated day of realistic size (50,000 alerts, ~500K feature
//! rows, ~1.9M money flows; `BENCH_ALERTS` changes it). The day is generated once into
//! `bench-data/criterion-{alerts}/` and reused. Run with `cargo bench --bench stages`.

use aml_pipeline::batch::{ArrowBatch, Table, Tables};
use aml_pipeline::calibration::Calibration;
use aml_pipeline::config::RunConfig;
use aml_pipeline::features::{build_cluster_matrix, build_matrix, cluster_memberships};
use aml_pipeline::model::ModelKind;
use aml_pipeline::stages::decode::DecodeParams;
use aml_pipeline::stages::score::ModelParams;
use aml_pipeline::stages::{
    cluster_score, decode, rank, score, write, Context, LogObserver, StageInput,
};
use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

fn setup() -> (Context, NaiveDate) {
    // As `pipeline` does: freed blocks are reused, not handed back and faulted in again.
    aml_pipeline::heap::keep_freed_memory();
    let alerts: usize = std::env::var("BENCH_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("bench-data/criterion-{alerts}"));
    let date = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
    if !root.join("input/torus/2025-10-01/195/META.json").exists() {
        let opts = aml_pipeline::generate::GenerateOptions {
            out: root.join("input"),
            network: "torus".into(),
            dates: vec![date],
            window_days: 195,
            alerts_per_day: alerts,
            seed: 7,
        };
        aml_pipeline::generate::generate(&opts, &mut |_| {}).unwrap();
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cfg_path = root.join("config.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "pipeline = {:?}\nnetwork = \"torus\"\nwindow_days = 195\ninput = {:?}\noutput = {:?}\nmodels = {:?}\n",
            manifest.join("pipelines/daily.toml"),
            root.join("input"),
            root.join("output"),
            manifest.join("trained_models")
        ),
    )
    .unwrap();
    (
        Context::new(RunConfig::load(&cfg_path).unwrap(), None).unwrap(),
        date,
    )
}

fn input<'a>(
    date: NaiveDate,
    tables: &'a Tables,
    timings: &'a BTreeMap<String, f64>,
) -> StageInput<'a> {
    StageInput {
        date,
        tables,
        timings,
        observer: &LogObserver,
    }
}

fn stages(c: &mut Criterion) {
    let (ctx, date) = setup();
    let dir = ctx.config.input_dir(date);
    let model = |kind: ModelKind| ctx.model_of(kind).expect("the pipeline applies it").clone();
    let timings = BTreeMap::new();
    let mut g = c.benchmark_group("stages");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(10));

    // The floor: merely reading the columns the pipeline needs, with arrow-rs, and nothing else.
    let needs: [(&str, Vec<&str>); 4] = [
        ("alerts.parquet", decode::ALERT_COLUMNS.to_vec()),
        ("features.parquet", decode::feature_columns()),
        ("clusters.parquet", decode::CLUSTER_COLUMNS.to_vec()),
        ("money_flows.parquet", decode::FLOW_COLUMNS.to_vec()),
    ];
    g.bench_function("decode_floor_read_columns", |b| {
        b.iter(|| {
            let mut rows = 0;
            for (file, cols) in &needs {
                for batch in aml_pipeline::io::ParquetSource::open(&dir.join(file))
                    .unwrap()
                    .read(cols, aml_pipeline::io::STREAM_ROWS)
                    .unwrap()
                {
                    rows += batch.unwrap().num_rows();
                }
            }
            rows
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| decode::run(&DecodeParams::default(), &dir, date, 195, false).unwrap())
    });
    // With every flow kept, for a model that uses the graph features.
    g.bench_function("decode_whole_graph", |b| {
        b.iter(|| decode::run(&DecodeParams::default(), &dir, date, 195, true).unwrap())
    });
    let no_checksums = DecodeParams {
        verify_checksums: false,
        ..DecodeParams::default()
    };
    g.bench_function("decode_without_checksums", |b| {
        b.iter(|| decode::run(&no_checksums, &dir, date, 195, false).unwrap())
    });
    let mut tables = decode::run(&DecodeParams::default(), &dir, date, 195, false).unwrap();
    let whole = decode::run(&DecodeParams::default(), &dir, date, 195, true).unwrap();

    g.bench_function("history_features", |b| {
        b.iter(|| {
            aml_pipeline::history::in_memory(&ctx.config, &[date], ctx.graph_features).unwrap()
        })
    });
    let history = aml_pipeline::history::in_memory(&ctx.config, &[date], ctx.graph_features)
        .unwrap()[&date]
        .clone();
    g.bench_function("feature_join", |b| {
        b.iter(|| build_matrix(date, &tables, || Ok(history.clone()), false).unwrap())
    });
    g.bench_function("feature_join_with_graph", |b| {
        b.iter(|| build_matrix(date, &whole, || Ok(history.clone()), true).unwrap())
    });
    let matrix = build_matrix(date, &tables, || Ok(history.clone()), false).unwrap();
    tables.insert(Table::Matrix, ArrowBatch(matrix.clone()));

    let scorer = model(ModelKind::AlertScorer);
    g.bench_function("score", |b| {
        b.iter(|| {
            score::score_table(&scorer, &matrix, "alert_id", false, Calibration::None).unwrap()
        })
    });
    // The prediction alone, by the flattened evaluator (`Model::predict`) and by LightGBM.
    let x = aml_pipeline::features::row_major(&matrix, &scorer.meta.feature_names).unwrap();
    g.bench_function("score_predict_forest", |b| {
        b.iter(|| scorer.predict(&x).unwrap())
    });
    g.bench_function("score_predict_lightgbm", |b| {
        b.iter(|| scorer.predict_lightgbm(&x).unwrap())
    });
    let head = matrix.slice(0, matrix.num_rows().min(5_000));
    g.bench_function("score_with_explain_5000_alerts", |b| {
        b.iter(|| score::score_table(&scorer, &head, "alert_id", true, Calibration::None).unwrap())
    });
    let scores =
        score::score_table(&scorer, &matrix, "alert_id", false, Calibration::None).unwrap();
    tables.insert(Table::AlertScores, ArrowBatch(scores));

    let ranker = model(ModelKind::AlertRanker);
    g.bench_function("rank", |b| {
        b.iter(|| rank::run(&ranker, &input(date, &tables, &timings)).unwrap())
    });
    tables.extend(rank::run(&ranker, &input(date, &tables, &timings)).unwrap());

    // The cluster matrix alone: each cluster's member alerts, then their means and maxes.
    let clusters = &tables[&Table::Clusters].0;
    g.bench_function("cluster_memberships", |b| {
        b.iter(|| cluster_memberships(clusters, &matrix).unwrap())
    });
    let members = cluster_memberships(clusters, &matrix).unwrap();
    g.bench_function("cluster_matrix", |b| {
        b.iter(|| build_cluster_matrix(clusters, &matrix, &members).unwrap())
    });
    let clusterer = model(ModelKind::ClusterScorer);
    let p = ModelParams {
        explain: false,
        ..ModelParams::default()
    };
    g.bench_function("cluster_score", |b| {
        b.iter(|| cluster_score::run(&clusterer, &p, &input(date, &tables, &timings)).unwrap())
    });
    tables.extend(cluster_score::run(&clusterer, &p, &input(date, &tables, &timings)).unwrap());

    g.bench_function("write", |b| {
        b.iter(|| write::run(&ctx, &input(date, &tables, &timings)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
