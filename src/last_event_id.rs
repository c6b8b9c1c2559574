//! Last-Event-ID (placeholder, being written).
/// placeholder
#[derive(Clone, Debug)]
pub struct LastEventId(pub String);
