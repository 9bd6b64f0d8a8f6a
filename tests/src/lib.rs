//! twk end-to-end test harness
