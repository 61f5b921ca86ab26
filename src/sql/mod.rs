//! SQL: parser, planner and executor (in progress).
