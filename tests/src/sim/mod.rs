//! OpenStack simulator (placeholder, being written).
