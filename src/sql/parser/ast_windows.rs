//! The syntax tree of window function calls (part of `ast.rs`): `f(args) OVER (PARTITION BY
//! ... ORDER BY ... ROWS ...)`.

use super::{Expression, OrderItem};
use serde::{Deserialize, Serialize};

/// The window a window function computes over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// PARTITION BY: rows with equal values form a partition.
    pub partition_by: Vec<Expression>,
    /// ORDER BY within each partition.
    pub order_by: Vec<OrderItem>,
    /// ROWS ...: the frame an aggregate covers (`None`: the SQL default).
    pub frame: Option<WindowFrame>,
}

/// `ROWS BETWEEN start AND end` (or `ROWS start`, ending at the current row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowFrame {
    /// Where the frame starts.
    pub start: FrameBound,
    /// Where it ends.
    pub end: FrameBound,
}

/// One end of a frame, counted in rows from the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameBound {
    /// UNBOUNDED PRECEDING: the partition's first row.
    UnboundedPreceding,
    /// n PRECEDING.
    Preceding(u64),
    /// CURRENT ROW.
    CurrentRow,
    /// n FOLLOWING.
    Following(u64),
    /// UNBOUNDED FOLLOWING: the partition's last row.
    UnboundedFollowing,
}

impl std::fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.partition_by.is_empty() {
            let exprs: Vec<String> = self.partition_by.iter().map(|e| e.to_string()).collect();
            parts.push(format!("PARTITION BY {}", exprs.join(", ")));
        }
        if !self.order_by.is_empty() {
            let items: Vec<String> = self
                .order_by
                .iter()
                .map(|o| format!("{}{}", o.expr, if o.descending { " DESC" } else { "" }))
                .collect();
            parts.push(format!("ORDER BY {}", items.join(", ")));
        }
        if let Some(frame) = &self.frame {
            parts.push(format!("ROWS BETWEEN {} AND {}", frame.start, frame.end));
        }
        write!(f, "OVER ({})", parts.join(" "))
    }
}

impl std::fmt::Display for FrameBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameBound::UnboundedPreceding => f.write_str("UNBOUNDED PRECEDING"),
            FrameBound::Preceding(n) => write!(f, "{n} PRECEDING"),
            FrameBound::CurrentRow => f.write_str("CURRENT ROW"),
            FrameBound::Following(n) => write!(f, "{n} FOLLOWING"),
            FrameBound::UnboundedFollowing => f.write_str("UNBOUNDED FOLLOWING"),
        }
    }
}
