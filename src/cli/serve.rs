//! `pipeline serve`: the outputs over HTTP.

use super::*;

/// Arguments of `pipeline serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Run configuration (TOML), e.g. configs/daily.toml.
    config: PathBuf,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8000")]
    bind: String,
    /// Output root (default: the config's `output`).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Connections open at once; one more is answered 503 and closed.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers before its connection is closed.
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
}

/// `pipeline serve`: the outputs over HTTP until Ctrl-C.
pub fn serve(args: ServeArgs) -> Result<i32> {
    let ServeArgs {
        config,
        bind,
        output,
        max_connections,
        header_timeout,
    } = args;
    let cfg = RunConfig::load(&config)?;
    if !(header_timeout > 0.0 && header_timeout.is_finite()) {
        anyhow::bail!("--header-timeout must be a positive number of seconds");
    }
    crate::serve::serve(
        crate::serve::ServeConfig {
            output: output.unwrap_or(cfg.output),
            network: cfg.network,
            window_days: cfg.window_days,
            limits: crate::serve::Limits {
                max_connections,
                header_timeout: std::time::Duration::from_secs_f64(header_timeout),
            },
            github_url: cfg.model_github_url.clone().unwrap_or_default(),
            cluster_stage: cfg
                .pipeline
                .stage_of(&crate::stages::cluster_score::KIND)
                .map(|s| s.name.clone()),
        },
        &bind,
    )?;
    Ok(0)
}
