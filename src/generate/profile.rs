//! Generator profiles: which world `pipeline generate` draws, and the knobs of the laundering
//! world (see `docs/generator.md`).

use anyhow::{bail, ensure, Result};

/// The world a generator run draws.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Profile {
    /// The original world: illicit addresses' own features shifted, about 25% of alerts
    /// SAR-filed. Its bytes are pinned (tests and the shipped models depend on them).
    #[default]
    Classic,
    /// Laundering hidden in multi-day, multi-hop flow patterns among a heavy-tailed background,
    /// with a realistic SAR rate and label noise.
    Laundering(Laundering),
}

impl Profile {
    /// The profile named `name` (`classic` or `laundering`, the latter with its defaults).
    pub fn named(name: &str) -> Result<Self> {
        match name {
            "classic" => Ok(Profile::Classic),
            "laundering" => Ok(Profile::Laundering(Laundering::default())),
            _ => bail!("unknown generator profile {name:?} (classic or laundering)"),
        }
    }

    /// The profile's name.
    pub fn name(&self) -> &'static str {
        match self {
            Profile::Classic => "classic",
            Profile::Laundering(_) => "laundering",
        }
    }
}

/// The eight laundering patterns of AMLworld (Altman et al. 2023).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// One source pays k targets.
    FanOut,
    /// k sources pay one sink.
    FanIn,
    /// k sources pay a hub, which later pays m targets.
    GatherScatter,
    /// A source pays k intermediaries, which later pay one sink.
    ScatterGather,
    /// Money goes round a closed chain of L addresses.
    Cycle,
    /// Money goes along an open chain of L hops.
    RandomWalk,
    /// m sources pay n targets, most pairs linked.
    Bipartite,
    /// Two bipartite layers one after the other: m → n → p.
    Stack,
}

impl Kind {
    /// Every pattern, in the order of [`PatternMix`]'s weights.
    pub const ALL: [Kind; 8] = [
        Kind::FanOut,
        Kind::FanIn,
        Kind::GatherScatter,
        Kind::ScatterGather,
        Kind::Cycle,
        Kind::RandomWalk,
        Kind::Bipartite,
        Kind::Stack,
    ];

    /// The pattern's name, as in `docs/generator.md`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::FanOut => "fan_out",
            Kind::FanIn => "fan_in",
            Kind::GatherScatter => "gather_scatter",
            Kind::ScatterGather => "scatter_gather",
            Kind::Cycle => "cycle",
            Kind::RandomWalk => "random_walk",
            Kind::Bipartite => "bipartite",
            Kind::Stack => "stack",
        }
    }
}

/// Relative weights of the eight patterns among the instances started each day, in the order
/// of [`Kind::ALL`]; a pattern of positive weight starts at least once a day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatternMix(pub [f64; 8]);

impl Default for PatternMix {
    fn default() -> Self {
        PatternMix([1.5, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    }
}

impl std::str::FromStr for PatternMix {
    type Err = anyhow::Error;

    /// Eight comma-separated non-negative weights, e.g. `1,1,1,1,1,1,1,1`.
    fn from_str(s: &str) -> Result<Self> {
        let w: Vec<f64> = s
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<Result<_, _>>()?;
        ensure!(
            w.len() == 8,
            "--pattern-mix takes 8 weights, got {}",
            w.len()
        );
        let w: [f64; 8] = w.try_into().expect("eight");
        ensure!(
            w.iter().all(|x| x.is_finite() && *x >= 0.0) && w.iter().sum::<f64>() > 0.0,
            "pattern weights must be non-negative and not all zero"
        );
        Ok(PatternMix(w))
    }
}

/// The knobs of the laundering world. Shares are in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Laundering {
    /// Target share of labelled alerts with a SAR filed.
    pub sar_rate: f64,
    /// Share of alerts on laundering addresses for which no SAR is filed.
    pub missed_sar: f64,
    /// Share of alerts on clean addresses with a SAR filed on weak evidence.
    pub weak_sar: f64,
    /// Share of alerts with a row in `ground_truth.parquet`.
    pub truth_coverage: f64,
    /// Share of alerted addresses with an address label.
    pub label_coverage: f64,
    /// Share of never-alerted addresses with an address label.
    pub background_label_coverage: f64,
    /// Share of labelled laundering addresses labelled low or medium risk.
    pub label_missed: f64,
    /// Share of labelled clean addresses labelled high or critical risk.
    pub label_false: f64,
    /// How far laundering addresses' own score features are shifted, as a fraction of the
    /// classic world's shifts (0: not at all).
    pub feature_shift: f64,
    /// Share of the addresses that take part in laundering.
    pub pool_share: f64,
    /// Pattern instances started per day, per alert the SAR rate puts on laundering
    /// addresses (so a higher SAR rate plants more patterns).
    pub patterns_per_laundering_alert: f64,
    /// Relative weights of the eight patterns.
    pub mix: PatternMix,
}

impl Default for Laundering {
    fn default() -> Self {
        Laundering {
            sar_rate: 0.03,
            missed_sar: 0.1,
            weak_sar: 0.004,
            truth_coverage: 0.5,
            label_coverage: 0.3,
            background_label_coverage: 0.01,
            label_missed: 0.1,
            label_false: 0.01,
            feature_shift: 0.1,
            pool_share: 0.015,
            patterns_per_laundering_alert: 0.25,
            mix: PatternMix::default(),
        }
    }
}

impl Laundering {
    /// Checks that every share is in [0, 1] and that the SAR rate is reachable.
    pub fn check(&self) -> Result<()> {
        let shares = [
            ("sar_rate", self.sar_rate),
            ("missed_sar", self.missed_sar),
            ("weak_sar", self.weak_sar),
            ("truth_coverage", self.truth_coverage),
            ("label_coverage", self.label_coverage),
            ("background_label_coverage", self.background_label_coverage),
            ("label_missed", self.label_missed),
            ("label_false", self.label_false),
            ("feature_shift", self.feature_shift),
            ("pool_share", self.pool_share),
        ];
        for (name, v) in shares {
            ensure!(
                (0.0..=1.0).contains(&v),
                "{name} must be in [0, 1], got {v}"
            );
        }
        ensure!(
            self.weak_sar <= self.sar_rate && self.sar_rate <= 1.0 - self.missed_sar,
            "sar_rate must lie between weak_sar and 1 - missed_sar"
        );
        ensure!(
            self.patterns_per_laundering_alert.is_finite()
                && self.patterns_per_laundering_alert >= 0.0,
            "patterns_per_laundering_alert must be non-negative"
        );
        Ok(())
    }

    /// Share of the alerts to put on laundering addresses so that the SAR rate is `sar_rate`:
    /// `s·(1 − missed) + (1 − s)·weak = sar_rate`.
    pub(super) fn laundering_alert_share(&self) -> f64 {
        let d = 1.0 - self.missed_sar - self.weak_sar;
        if d <= 0.0 {
            return 0.0;
        }
        ((self.sar_rate - self.weak_sar) / d).clamp(0.0, 1.0)
    }
}
