//! Helpers shared by the fuzz targets: chunking a byte string at arbitrary points, and
//! plain, non-streaming reference implementations to compare the crate against.

pub mod form;
pub mod reference;

/// Splits `bytes` into consecutive chunks whose lengths come from `sizes` (each taken modulo
/// what is left plus one, so empty chunks occur too); the rest, if any, is the last chunk.
/// The chunks always concatenate back to `bytes`.
pub fn chunks<'a>(bytes: &'a [u8], sizes: &[u16]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(sizes.len() + 1);
    let mut rest = bytes;
    for &size in sizes {
        let len = usize::from(size) % (rest.len() + 1);
        let (head, tail) = rest.split_at(len);
        out.push(head);
        rest = tail;
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    debug_assert_eq!(out.concat(), bytes);
    out
}

/// `value` with every CRLF, lone CR and lone LF turned into LF: what a client makes of
/// the line breaks in an event's data.
pub fn normalize_newlines(value: &str) -> String {
    value.replace("\r\n", "\n").replace('\r', "\n")
}
