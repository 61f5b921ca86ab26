//! The SQL parser: text in, [`ast::Statement`]s out.
//!
//! The grammar (`chronos.pest`) is parsed by pest; `parser.rs` walks pest's pairs into our own
//! AST, applying operator precedence with a Pratt parser. pest types never leave this module,
//! so the planner depends only on [`ast`].
//!
//! Errors name the line and column and what was expected. Input never panics the parser: pest
//! guards its own recursion with a stack probe, and expression trees deeper than
//! [`MAX_EXPRESSION_DEPTH`] are rejected before anything recurses over them.

pub mod ast;
pub mod locate;
#[allow(clippy::module_inception)]
mod parser;

pub use parser::{MAX_EXPRESSION_DEPTH, parse, parse_spans, parse_statement};

#[cfg(test)]
mod tests;
