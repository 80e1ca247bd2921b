//! `pipeline query`: SQL over the outputs.

use super::*;

/// Arguments of `pipeline query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Run configuration (TOML), e.g. configs/daily.toml.
    config: PathBuf,
    /// The SQL statement, e.g. "SELECT processing_date, count(*) FROM alert_scores GROUP BY 1".
    sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = crate::query::Format::Table)]
    format: crate::query::Format,
    /// Write the result to this file instead of stdout (needed for parquet on a terminal).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Output root (default: the config's `output`).
    #[arg(long)]
    output: Option<PathBuf>,
}

/// `pipeline query`: one SQL statement over the views of the outputs.
pub fn query(args: QueryArgs) -> Result<i32> {
    let QueryArgs {
        config,
        sql,
        format,
        out,
        output,
    } = args;
    let cfg = RunConfig::load(&config)?;
    let root = output.unwrap_or(cfg.output);
    query_command(&root, &sql, format, out.as_deref())
}

/// `pipeline query`: one SQL statement over the output views, printed or written in `format`.
fn query_command(
    root: &std::path::Path,
    sql: &str,
    format: crate::query::Format,
    out: Option<&std::path::Path>,
) -> Result<i32> {
    use std::io::IsTerminal;
    if !root.is_dir() {
        bail!(
            "output root {} does not exist; run `pipeline run` first",
            root.display()
        );
    }
    let catalog = crate::query::Catalog::open(root)?;
    let (schema, batches) = catalog.query(sql)?;
    match out {
        Some(path) => crate::io::write_atomic(path, |w| {
            crate::query::write_result(&schema, &batches, format, w)
        })?,
        None => {
            if format == crate::query::Format::Parquet && std::io::stdout().is_terminal() {
                bail!("--format parquet writes binary data: give --out FILE or redirect stdout");
            }
            let mut stdout = std::io::BufWriter::new(std::io::stdout());
            crate::query::write_result(&schema, &batches, format, &mut stdout)?;
            std::io::Write::flush(&mut stdout)?;
        }
    }
    Ok(0)
}
