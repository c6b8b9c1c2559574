//! Finding and decoding one parameter of an `application/x-www-form-urlencoded` query,
//! without decoding (or allocating for) the rest of it.
//!
//! Decoding follows the WHATWG URL standard's form-urlencoded parser: pairs are split on
//! `&`, name and value on the first `=`, `+` is a space, `%` followed by two hex digits is
//! that byte, and any other `%` is kept as it is. Unlike a lossy decoder, bytes that are not
//! UTF-8 are kept so that the caller can refuse them instead of receiving U+FFFD.

/// Percent-decoding iterator over the bytes of one raw name or value.
#[derive(Clone)]
pub(super) struct FormDecode<'a> {
    rest: &'a [u8],
}

impl<'a> FormDecode<'a> {
    pub(super) fn new(raw: &'a [u8]) -> Self {
        Self { rest: raw }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Iterator for FormDecode<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        match b {
            b'+' => Some(b' '),
            b'%' => match rest {
                [h, l, tail @ ..] => match (hex(*h), hex(*l)) {
                    (Some(h), Some(l)) => {
                        self.rest = tail;
                        Some((h << 4) | l)
                    }
                    _ => Some(b'%'),
                },
                _ => Some(b'%'),
            },
            _ => Some(b),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.rest.len().div_ceil(3), Some(self.rest.len()))
    }
}

/// The raw (still encoded) values of the parameters whose decoded name is one of `names`,
/// in query order, skipping empty values (an empty value means "absent").
pub(super) fn matching_values<'q>(
    query: &'q str,
    names: &'q [&'q str],
) -> impl Iterator<Item = &'q [u8]> + 'q {
    query
        .as_bytes()
        .split(|&b| b == b'&')
        .filter_map(move |pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            if value.is_empty() {
                return None;
            }
            names
                .iter()
                .any(|n| FormDecode::new(name).eq(n.bytes()))
                .then_some(value)
        })
}

/// Decodes `raw` into at most `max` bytes. Over the limit, returns `Err` with the full
/// decoded length, counted without storing the bytes.
pub(super) fn decode_bounded(raw: &[u8], max: usize) -> Result<Vec<u8>, usize> {
    let mut out = Vec::with_capacity(raw.len().min(max));
    let mut decoded = FormDecode::new(raw);
    for b in decoded.by_ref() {
        if out.len() == max {
            return Err(max + 1 + decoded.count());
        }
        out.push(b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Vec<u8> {
        FormDecode::new(s.as_bytes()).collect()
    }

    #[test]
    fn decodes_like_form_urlencoded() {
        assert_eq!(dec("a+b"), b"a b");
        assert_eq!(dec("%41%62"), b"Ab");
        assert_eq!(dec("%2B%2b"), b"++");
        assert_eq!(dec("%C3%A9"), "é".as_bytes());
        assert_eq!(dec("%ff"), [0xff]);
        // Malformed escapes are kept literally, as the WHATWG parser does.
        assert_eq!(dec("%"), b"%");
        assert_eq!(dec("%4"), b"%4");
        assert_eq!(dec("%zz1"), b"%zz1");
        assert_eq!(dec("100%"), b"100%");
        assert_eq!(dec("%%41"), b"%A");
    }

    #[test]
    fn agrees_with_form_urlencoded_on_utf8() {
        for raw in ["a+b%20c", "%E2%82%AC+%", "x%3D%26y", "%zz", "caf%C3%A9", ""] {
            let ours = String::from_utf8(dec(raw)).unwrap();
            let theirs: String = form_urlencoded::parse(format!("k={raw}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            assert_eq!(ours, theirs, "raw {raw:?}");
        }
    }

    #[test]
    fn finds_matching_names_in_order() {
        let names: &[&str] = &["lastEventId", "last_event_id"];
        let q = "a=1&lastEventId=&last_event_id=7&last%45ventId=8&lastEventId&x=lastEventId";
        let found: Vec<&[u8]> = matching_values(q, names).collect();
        assert_eq!(found, [&b"7"[..], &b"8"[..]]);
        assert_eq!(matching_values("", names).count(), 0);
        assert_eq!(matching_values("&&=&", names).count(), 0);
        // The value keeps everything after the first `=`.
        let found: Vec<&[u8]> = matching_values("lastEventId==a=b", names).collect();
        assert_eq!(found, [&b"=a=b"[..]]);
        // Names are compared exactly (case-sensitive), after decoding.
        assert_eq!(
            matching_values("lasteventid=1&LastEventId=2", names).count(),
            0
        );
    }

    #[test]
    fn bounded_decoding() {
        assert_eq!(decode_bounded(b"abc", 3), Ok(b"abc".to_vec()));
        assert_eq!(decode_bounded(b"abcd", 3), Err(4));
        assert_eq!(decode_bounded(b"%41%41%41", 3), Ok(b"AAA".to_vec()));
        assert_eq!(decode_bounded(b"%41%41%41%41%41", 3), Err(5));
        assert_eq!(decode_bounded(b"a", 0), Err(1));
        assert_eq!(decode_bounded(b"", 0), Ok(Vec::new()));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_stays_bounded(query in "\\PC{0,300}", max in 0usize..40) {
            let names: &[&str] = &["lastEventId", "last_event_id", ""];
            for raw in matching_values(&query, names) {
                proptest::prop_assert!(!raw.is_empty());
                let full = FormDecode::new(raw).count();
                match decode_bounded(raw, max) {
                    Ok(bytes) => {
                        proptest::prop_assert!(bytes.len() <= max);
                        proptest::prop_assert!(bytes.capacity() <= max);
                        proptest::prop_assert_eq!(bytes.len(), full);
                    }
                    Err(len) => {
                        proptest::prop_assert!(len > max);
                        proptest::prop_assert_eq!(len, full);
                    }
                }
            }
        }
    }
}
