//! Per-service route tables (placeholder, being written).
