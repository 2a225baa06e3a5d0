//! Error bodies in each fronted service's native format (placeholder, being written).
