//! The Statements view's state: each node's statement statistics (by fingerprint), merged
//! into one list of rows sorted by the column the operator chose.

use crate::model::NodeId;
use chronos::grpc::pb;
use std::collections::BTreeMap;

/// What the Statements view sorts by (most first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortBy {
    /// Time spent in all.
    #[default]
    Total,
    /// Times served.
    Count,
    /// 99th percentile latency.
    P99,
}

impl SortBy {
    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            SortBy::Total => "total time",
            SortBy::Count => "count",
            SortBy::P99 => "p99",
        }
    }

    fn key(self, statistic: &pb::StatementStatistic) -> u64 {
        match self {
            SortBy::Total => statistic.total_us,
            SortBy::Count => statistic.count,
            SortBy::P99 => statistic.p99_us,
        }
    }
}

/// Each node's statement statistics, as last fetched.
#[derive(Default)]
pub struct StatementsModel {
    /// By node: its statistics, or why they could not be fetched.
    pub by_node: BTreeMap<NodeId, Result<Vec<pb::StatementStatistic>, String>>,
    /// The sort column.
    pub sort: SortBy,
    /// The first row shown.
    pub scroll: usize,
}

impl StatementsModel {
    /// Takes in a node's statistics.
    pub fn on_statistics(
        &mut self,
        node: NodeId,
        statistics: Result<Vec<pb::StatementStatistic>, String>,
    ) {
        self.by_node.insert(node, statistics);
    }

    /// Every node's rows, sorted (ties by fingerprint, then node).
    pub fn rows(&self) -> Vec<(NodeId, &pb::StatementStatistic)> {
        let mut rows: Vec<(NodeId, &pb::StatementStatistic)> = self
            .by_node
            .iter()
            .filter_map(|(node, statistics)| Some((*node, statistics.as_ref().ok()?)))
            .flat_map(|(node, statistics)| statistics.iter().map(move |s| (node, s)))
            .collect();
        let sort = self.sort;
        rows.sort_by(|(na, a), (nb, b)| {
            sort.key(b)
                .cmp(&sort.key(a))
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
                .then(na.cmp(nb))
        });
        rows
    }

    /// The nodes whose statistics could not be fetched, with why.
    pub fn failures(&self) -> Vec<(NodeId, &str)> {
        self.by_node
            .iter()
            .filter_map(|(node, result)| Some((*node, result.as_ref().err()?.as_str())))
            .collect()
    }

    /// Scrolls by `rows` (within the rows there are).
    pub fn scroll_by(&mut self, rows: isize) {
        let count: usize =
            self.by_node.values().filter_map(|r| r.as_ref().ok()).map(Vec::len).sum();
        self.scroll = self.scroll.saturating_add_signed(rows).min(count.saturating_sub(1));
    }
}
