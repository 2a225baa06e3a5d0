//! The mirror journal (placeholder, being written).
