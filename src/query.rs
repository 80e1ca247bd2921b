//! The query layer: DuckDB views over the Parquet and JSON outputs of completed dates.
//!
//! The outputs stay the source of truth; DuckDB only reads them. A date counts as completed
//! once its `processing_metadata.json` exists, because the write stage commits it last (see
//! [`crate::stages::write`]), so no view ever shows a half-written date.

use crate::layout;
use anyhow::{anyhow, bail, Context, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use duckdb::Connection;
use std::path::{Path, PathBuf};

/// The views a query can use, with the file each reads in every completed date directory.
pub const VIEWS: [(&str, &str); 5] = [
    ("alert_scores", layout::ALERT_SCORES),
    ("alert_rankings", layout::ALERT_RANKINGS),
    ("cluster_scores", layout::CLUSTER_SCORES),
    ("processing_metadata", layout::PROCESSING_METADATA),
    ("validation", layout::VALIDATION),
];

/// One completed output date: `{output}/{network}/{date}/{window_days}/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutputDate {
    /// Network name (the first path level).
    pub network: String,
    /// Processing date.
    pub date: NaiveDate,
    /// Window in days.
    pub window_days: u32,
    /// The date's output directory.
    pub dir: PathBuf,
}

/// Whether `name` can be a network directory: ASCII letters, digits, `_` and `-` only.
pub fn is_network_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn subdirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect()
}

/// The completed dates under `output`, in (network, date, window) order; `network` and
/// `window_days` narrow the walk when given. Directories that do not look like outputs
/// (`.state`, stray names) are skipped.
pub fn completed_dates(
    output: &Path,
    network: Option<&str>,
    window_days: Option<u32>,
) -> Vec<OutputDate> {
    let mut out = Vec::new();
    for (net, net_dir) in subdirs(output) {
        if !is_network_name(&net) || network.is_some_and(|n| n != net) {
            continue;
        }
        for (day, day_dir) in subdirs(&net_dir) {
            let Ok(date) = NaiveDate::parse_from_str(&day, "%Y-%m-%d") else {
                continue;
            };
            for (w, dir) in subdirs(&day_dir) {
                let Ok(w) = w.parse::<u32>() else { continue };
                if window_days.is_some_and(|x| x != w)
                    || !dir.join(layout::PROCESSING_METADATA).is_file()
                {
                    continue;
                }
                out.push(OutputDate {
                    network: net.clone(),
                    date,
                    window_days: w,
                    dir,
                });
            }
        }
    }
    out.sort();
    out
}

/// Whether an output file can be handed to DuckDB: a regular file (a named pipe would hang
/// its reader) that parses (a Parquet footer, JSON), since one bad file would fail every
/// query over its view. Anything else present is left out of the views with a warning.
fn readable(path: &Path) -> bool {
    let checked = if path.extension().is_some_and(|e| e == "json") {
        crate::io::read_regular(path)
            .map_err(|e| crate::io::read_error(path, e))
            .and_then(|b| Ok(serde_json::from_slice::<serde_json::Value>(&b).map(|_| ())?))
    } else {
        crate::io::ParquetSource::open(path).map(|_| ())
    };
    match checked {
        Ok(()) => true,
        Err(_) if !path.exists() => false,
        Err(e) => {
            tracing::warn!("left out of the views: {}", crate::error::error_text(&e));
            false
        }
    }
}

/// A SQL string literal (for DDL, which takes no parameters; paths come from the output walk).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An in-memory DuckDB database with one view per output table over the completed dates.
pub struct Catalog {
    conn: Connection,
    output: PathBuf,
}

impl Catalog {
    /// Opens DuckDB and creates the views over `output`.
    pub fn open(output: &Path) -> Result<Self> {
        let conn = Connection::open_in_memory().context("cannot open an in-memory DuckDB")?;
        let catalog = Self {
            conn,
            output: output.to_path_buf(),
        };
        catalog.refresh()?;
        Ok(catalog)
    }

    /// Recreates the views over the dates completed now; returns how many there are.
    pub fn refresh(&self) -> Result<usize> {
        let dates = completed_dates(&self.output, None, None);
        for (view, file) in VIEWS {
            let files: Vec<String> = dates
                .iter()
                .map(|d| d.dir.join(file))
                .filter(|p| readable(p))
                .map(|p| literal(&p.display().to_string()))
                .collect();
            self.conn
                .execute_batch(&view_sql(view, file, &files))
                .with_context(|| format!("cannot create the view `{view}`"))?;
        }
        Ok(dates.len())
    }

    /// Runs one SQL statement; returns the schema and the batches of its result.
    pub fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let names: Vec<&str> = VIEWS.iter().map(|v| v.0).collect();
        let mut stmt = self.conn.prepare(sql).map_err(|e| {
            anyhow!(
                "query failed: {e}\n  views: {} (each with network, processing_date, window_days)",
                names.join(", ")
            )
        })?;
        let arrow = stmt
            .query_arrow([])
            .map_err(|e| anyhow!("query failed: {e}"))?;
        let schema = arrow.get_schema();
        Ok((schema, arrow.collect()))
    }
}

/// The view over `files` (SQL literals) of one output table, with `network`,
/// `processing_date` and `window_days` from each file's path in front of its own columns.
fn view_sql(view: &str, file: &str, files: &[String]) -> String {
    if files.is_empty() {
        return format!(
            "CREATE OR REPLACE VIEW {view} AS SELECT NULL::VARCHAR AS network, \
             NULL::DATE AS processing_date, NULL::INTEGER AS window_days WHERE false"
        );
    }
    let reader = if file.ends_with(".json") {
        "read_json"
    } else {
        "read_parquet"
    };
    format!(
        "CREATE OR REPLACE VIEW {view} AS \
         WITH t AS (SELECT *, string_split(filename, '/') AS _path \
                    FROM {reader}([{}], filename = true, union_by_name = true)) \
         SELECT _path[-4] AS network, CAST(_path[-3] AS DATE) AS processing_date, \
                CAST(_path[-2] AS INTEGER) AS window_days, \
                COLUMNS(c -> c NOT IN ('filename', '_path', 'network', 'processing_date', 'window_days')) \
         FROM t",
        files.join(", ")
    )
}

/// How `pipeline query` prints a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row, in a JSON array.
    Json,
    /// A Parquet file (needs `--out`, or a non-terminal stdout).
    Parquet,
}

/// Writes a query result in `format` to `out`.
pub fn write_result(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
    out: &mut (dyn std::io::Write + Send),
) -> Result<()> {
    match format {
        Format::Table => {
            let table = if batches.is_empty() {
                arrow::util::pretty::pretty_format_batches_with_schema(schema.clone(), batches)?
                    .to_string()
            } else {
                arrow::util::pretty::pretty_format_batches(batches)?.to_string()
            };
            writeln!(out, "{table}")?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            writeln!(out, "({rows} rows)")?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            if batches.iter().all(|b| b.num_rows() == 0) {
                write!(out, "[]")?;
            }
            writeln!(out)?;
        }
        Format::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut *out, schema.clone(), None)?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
        }
    }
    Ok(())
}

/// Checks that a date argument is `YYYY-MM-DD` (a real date) and returns it.
pub fn parse_date(s: &str) -> Result<NaiveDate> {
    if s.len() != 10 {
        bail!("`{s}` is not a date: expected YYYY-MM-DD");
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| anyhow!("`{s}` is not a date: expected YYYY-MM-DD"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_cannot_leave_the_tree() {
        assert!(is_network_name("torus"));
        assert!(is_network_name("bit-coin_2"));
        for bad in ["", "..", "a/b", "a b", "x'y", ".state", "%2e%2e"] {
            assert!(!is_network_name(bad), "{bad}");
        }
    }

    #[test]
    fn dates_must_be_strict() {
        assert!(parse_date("2025-10-01").is_ok());
        for bad in [
            "2025-1-1",
            "2025-02-30",
            "latest",
            "2025-10-01' OR 1=1",
            "../../etc",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literals_escape_quotes() {
        assert_eq!(literal("a'b"), "'a''b'");
    }
}
