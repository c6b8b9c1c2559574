//! A spec-exact SSE parser (placeholder, being written).
