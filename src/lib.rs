//! aml-pipeline: the daily AML alert-scoring pipeline as a library.
//!
//! A run decodes one source-of-truth batch per processing date, joins features, scores
//! alerts and clusters with LightGBM models, ranks the alerts, writes Parquet outputs and
//! validates them. The stages are timely-dataflow operators wired from a TOML graph
//! ([`config::PipelineSpec`]); [`engine::run`] executes them over many dates in parallel.
//! [`fetch`] mirrors batches from object storage; [`query`] and [`serve`] read the outputs
//! with DuckDB, from the command line and over HTTP.

pub(crate) mod address_table;
pub mod arrivals;
pub mod background;
pub mod batch;
pub mod calibration;
pub mod cli;
pub mod code_scope;
pub mod compare;
pub mod config;
pub mod contract;
pub mod dates;
pub mod engine;
pub mod error;
pub mod features;
pub mod fetch;
pub mod forest;
pub mod generate;
pub mod heap;
pub mod history;
pub mod io;
pub mod labels;
pub mod layout;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod query;
pub mod serve;
pub mod stages;
pub mod state;
pub mod submit;
pub mod train;
pub mod validation;
pub mod validator;
