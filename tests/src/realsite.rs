//! Starts and stops real OpenStack sites (placeholder, being written).
