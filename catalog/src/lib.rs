//! Pure service-catalog model (placeholder, being written).
