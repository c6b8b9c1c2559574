//! Broadcast hub (placeholder, being written).
