//! PLACEHOLDER so the crate compiles while the generator is being written; replaced wholesale.
use anyhow::Result;
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub out: std::path::PathBuf,
    pub network: String,
    pub dates: Vec<chrono::NaiveDate>,
    pub window_days: u32,
    pub alerts_per_day: usize,
    pub seed: u64,
}
#[derive(Debug, Clone, Default)]
pub struct GenerateSummary {
    pub dates: usize,
    pub alerts: usize,
    pub features: usize,
    pub clusters: usize,
    pub money_flows: usize,
    pub labelled_addresses: usize,
    pub ground_truth: usize,
}
pub fn generate(
    _o: &GenerateOptions,
    _p: &mut dyn FnMut(chrono::NaiveDate),
) -> Result<GenerateSummary> {
    anyhow::bail!("placeholder")
}
