//! Decode's reading of `money_flows.parquet`: the day's flow graph with numbered ends.

use super::{check_date, make_batch, FLOW_COLUMNS};
use crate::address_table::{hash, AddressTable, AHEAD};
use crate::contract::{column, required, to_f64, to_str_view};
use crate::features::Network;
use crate::io::ParquetSource;
use crate::stages::alerted::Alerted;
use anyhow::{bail, Result};
use arrow::array::{Array, Float64Array, Int32Array, Int32Builder, StringViewArray};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use std::path::Path;
use std::sync::Arc;

/// What decode makes of `money_flows.parquet`.
pub(super) struct Flows {
    /// The flow graph, when a model uses the graph features: the flows with both ends, in file
    /// order, their ends numbered by first appearance (`from_node`, `to_node`, so no address
    /// string is kept) and given the row of the first alert of each alerted end (`from_alert`,
    /// `to_alert`). No rows otherwise.
    pub graph: RecordBatch,
    /// The network features of each alert's address ([`crate::features::Network`]).
    pub network: RecordBatch,
    /// The file's row count.
    pub total: usize,
}

/// Streams `money_flows.parquet` of a day of `alerts` alerts into its [`Flows`]: the flow graph
/// if `whole`, and the network features, summed up as the flows stream by, so that without
/// the graph features no flow is kept.
///
/// A thread of its own decodes the file and hashes each batch's ends a few batches ahead of the
/// lookups (the two halves share the cores with decode's other readers), and the lookups of
/// the ends [`AHEAD`] are prefetched while the current one is answered.
pub(super) fn read_flows(
    path: &Path,
    date: NaiveDate,
    alerted: &Alerted,
    alerts: usize,
    batch_size: usize,
    whole: bool,
) -> Result<Flows> {
    let file = path.display().to_string();
    let src = ParquetSource::open_with_views(path, &["from_address", "to_address"])?;
    let total = src.num_rows();
    let empty = src.schema().fields().is_empty();
    let mut nodes = Nodes::new(&file);
    let mut network = Network::new(alerts);
    let (mut from, mut to) = (Vec::new(), Vec::new());
    let (mut usd, mut tx_count) = (Vec::new(), Vec::new());
    let (mut from_alert, mut to_alert) = (Int32Builder::new(), Int32Builder::new());
    if !empty {
        std::thread::scope(|s| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel(2);
            let (batches, file) = (src.read(FLOW_COLUMNS, batch_size)?, &file);
            s.spawn(move || {
                for b in batches {
                    if tx.send(b.and_then(|b| Ends::of(&b, file, date))).is_err() {
                        break;
                    }
                }
            });
            for ends in rx {
                let Ends { f, t, u, x, hashes } = ends?;
                for i in 0..f.len() {
                    if let Some(&ends) = hashes.get(i + AHEAD) {
                        nodes.prefetch(alerted, ends, whole, AddressTable::prefetch_slot);
                    }
                    if let Some(&ends) = hashes.get(i + AHEAD / 2) {
                        nodes.prefetch(alerted, ends, whole, AddressTable::prefetch_key);
                    }
                    let (fv, tv) = (
                        f.is_valid(i).then(|| f.value(i)),
                        t.is_valid(i).then(|| t.value(i)),
                    );
                    let (Some(fv), Some(tv)) = (fv, tv) else {
                        continue;
                    };
                    let [hf, ht] = hashes[i];
                    let (fa, ta) = (
                        alerted.first_row_hashed(hf, fv),
                        alerted.first_row_hashed(ht, tv),
                    );
                    if !whole && fa.is_none() && ta.is_none() {
                        continue;
                    }
                    let ends = [nodes.number(hf, fv, fa)?, nodes.number(ht, tv, ta)?];
                    let amount = if u.is_valid(i) { u.value(i) } else { f64::NAN };
                    let count = if x.is_valid(i) { x.value(i) } else { f64::NAN };
                    let rows = [fa, ta].map(|r| r.map(|r| r as u32));
                    network.add(ends, rows, amount, count);
                    if whole {
                        from.push(ends[0]);
                        to.push(ends[1]);
                        from_alert.append_option(fa);
                        to_alert.append_option(ta);
                        usd.push(amount);
                        tx_count.push(count);
                    }
                }
            }
            Ok(())
        })?;
    }
    let graph = make_batch(vec![
        ("from_node", Arc::new(Int32Array::from(from))),
        ("to_node", Arc::new(Int32Array::from(to))),
        ("amount_usd_sum", Arc::new(Float64Array::from(usd))),
        ("tx_count", Arc::new(Float64Array::from(tx_count))),
        ("from_alert", Arc::new(from_alert.finish())),
        ("to_alert", Arc::new(to_alert.finish())),
    ])?;
    drop(nodes);
    let mut first: Vec<u32> = (0..alerts as u32).collect();
    for &(row, f) in alerted.repeats() {
        first[row as usize] = f;
    }
    let network = make_batch(network.finish(&first)?)?;
    Ok(Flows {
        graph,
        network,
        total,
    })
}

/// A batch of flows made ready for the lookups: its two ends, amounts and counts, and the
/// hashes of its ends.
struct Ends {
    f: StringViewArray,
    t: StringViewArray,
    u: Float64Array,
    x: Float64Array,
    hashes: Vec<[u64; 2]>,
}

impl Ends {
    /// The columns of batch `b` of `file`, checked to be of `date`.
    fn of(b: &RecordBatch, file: &str, date: NaiveDate) -> Result<Self> {
        check_date(b, file, date)?;
        let f = to_str_view(required(b, file, "from_address")?, file, "from_address")?;
        let t = to_str_view(required(b, file, "to_address")?, file, "to_address")?;
        let u = to_f64(required(b, file, "amount_usd_sum")?, file, "amount_usd_sum")?;
        let x = match column(b, "tx_count") {
            Some(c) => to_f64(c, file, "tx_count")?,
            None => Float64Array::from(vec![1.0; b.num_rows()]),
        };
        let hashes = (0..b.num_rows())
            .map(|i| [end_hash(&f, i), end_hash(&t, i)])
            .collect();
        Ok(Self { f, t, u, x, hashes })
    }
}

/// The hash of row `i`'s address (0 for a null, which is never looked up).
fn end_hash(a: &StringViewArray, i: usize) -> u64 {
    if a.is_valid(i) {
        hash(a.value(i))
    } else {
        0
    }
}

/// The numbers of the flows' ends, given in order of first appearance. An alerted end's number
/// is kept by the row of its first alert (it was looked up already), so only the other ends
/// are looked up by their string.
struct Nodes<'a> {
    file: &'a str,
    alerted: Vec<i32>,
    others: AddressTable,
    n: u32,
}

impl<'a> Nodes<'a> {
    fn new(file: &'a str) -> Self {
        Self {
            file,
            alerted: Vec::new(),
            others: AddressTable::with_capacity(1 << 16),
            n: 0,
        }
    }

    /// The number of end `a` (hash `h`, first alert row `alert` if alerted).
    fn number(&mut self, h: u64, a: &str, alert: Option<i32>) -> Result<i32> {
        if self.n == i32::MAX as u32 {
            bail!(
                "{}: more than 2^31 distinct addresses in one day's flows; not supported",
                self.file
            );
        }
        let number = match alert {
            Some(r) => {
                let r = r as usize;
                if self.alerted.len() <= r {
                    self.alerted.resize(r + 1, -1);
                }
                if self.alerted[r] < 0 {
                    self.alerted[r] = self.n as i32;
                }
                self.alerted[r] as u32
            }
            None => match self.others.get_or_insert(h, a, self.n) {
                Some(number) => number,
                None => bail!(
                    "{}: more than 4 GB of distinct addresses in one day's flows; not supported",
                    self.file
                ),
            },
        };
        if number == self.n {
            self.n += 1;
        }
        Ok(number as i32)
    }

    /// Prefetches, with `fetch`, what the lookups of a flow's two ends (hashes `ends`) will
    /// read: the alerted table for an end that may be alerted, the other ends' table for an end
    /// that will be numbered by its string.
    fn prefetch(
        &self,
        alerted: &Alerted,
        ends: [u64; 2],
        whole: bool,
        fetch: fn(&AddressTable, u64),
    ) {
        let may = ends.map(|h| alerted.may_contain(h));
        for (h, m) in ends.into_iter().zip(may) {
            if m {
                fetch(alerted.table(), h);
            } else if whole || may[0] || may[1] {
                fetch(&self.others, h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, AsArray, DictionaryArray, LargeStringArray, StringArray};
    use arrow::datatypes::{Float64Type, Int32Type};

    /// What decode makes of the flows a→b, b→y, c→a, x→z of a file whose two address columns
    /// are made by `strings`, with `a` and `c` alerted, read `batch_size` rows at a time (the
    /// graph with `whole`).
    fn flows_in_batches(
        strings: fn(Vec<&'static str>) -> ArrayRef,
        batch_size: usize,
        whole: bool,
    ) -> (RecordBatch, RecordBatch) {
        let (from, to) = (vec!["a", "b", "c", "x"], vec!["b", "y", "a", "z"]);
        let batch = make_batch(vec![
            ("from_address", strings(from)),
            ("to_address", strings(to)),
            (
                "amount_usd_sum",
                Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])),
            ),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("money_flows.parquet");
        crate::io::write_parquet(&path, &batch).unwrap();
        let alerted = Alerted::new([(0, "a"), (1, "c")].into_iter());
        let date = NaiveDate::from_ymd_opt(2025, 7, 1).unwrap();
        let flows = read_flows(&path, date, &alerted, 2, batch_size, whole).unwrap();
        assert_eq!(flows.total, 4);
        (flows.graph, flows.network)
    }

    fn utf8(v: Vec<&'static str>) -> ArrayRef {
        Arc::new(StringArray::from(v))
    }

    #[test]
    fn address_columns_of_every_string_type_give_the_same_graph() {
        let (graph, network) = flows_in_batches(utf8, 2, true);
        let ends = |n: &str| -> Vec<i32> {
            let c = graph.column_by_name(n).unwrap();
            c.as_primitive::<Int32Type>().values().to_vec()
        };
        assert_eq!(
            (ends("from_node"), ends("to_node")),
            (vec![0, 1, 3, 4], vec![1, 2, 0, 5])
        );
        let others: [fn(Vec<&'static str>) -> ArrayRef; 3] = [
            |v| Arc::new(LargeStringArray::from(v)),
            |v| Arc::new(StringViewArray::from(v)),
            |v| Arc::new(v.into_iter().collect::<DictionaryArray<Int32Type>>()),
        ];
        for strings in others {
            assert_eq!(
                flows_in_batches(strings, 2, true),
                (graph.clone(), network.clone())
            );
        }
    }

    #[test]
    fn the_flows_touching_an_alerted_address_make_its_network_features() {
        let (graph, network) = flows_in_batches(utf8, 2, false);
        assert_eq!(graph.num_rows(), 0, "no graph without the graph features");
        let value = |name: &str| -> Vec<f64> {
            let c = network.column_by_name(name).unwrap();
            c.as_primitive::<Float64Type>().values().to_vec()
        };
        // a: in from c (3 USD), out to b (1 USD); c: out to a.
        assert_eq!(value("net_in_degree"), [1.0, 0.0]);
        assert_eq!(value("net_out_degree"), [1.0, 1.0]);
        assert_eq!(value("net_in_usd"), [3.0, 0.0]);
        assert_eq!(value("net_out_usd"), [1.0, 3.0]);
        assert_eq!(value("net_alerted_counterparties"), [1.0, 1.0]);
    }

    #[test]
    fn the_flows_do_not_depend_on_the_batch_size() {
        for whole in [false, true] {
            let one = flows_in_batches(utf8, 1, whole);
            assert_eq!(one.0.num_rows(), if whole { 4 } else { 0 });
            assert_eq!(one.1, flows_in_batches(utf8, 1, !whole).1, "{whole}");
            for batch_size in [2, 3, 8_192] {
                assert_eq!(
                    flows_in_batches(utf8, batch_size, whole),
                    one,
                    "{batch_size}"
                );
            }
        }
    }
}
