//! Pure DR policy model (placeholder, being written).
