//! The gateway's durable state store (placeholder, being written).
