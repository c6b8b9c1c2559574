//! Decimal numbers written as text: the one parser behind event ids, Redis stream entry ids
//! and the decoder's `retry` values.
//!
//! Only ASCII digits count: no sign, no spaces, no other Unicode digits. A value past
//! `u64::MAX` is refused rather than wrapped or clamped. No input panics.

/// The value of `digits`: one or more ASCII digits, leading zeros allowed (`007` is 7).
/// `None` if `digits` is empty, holds anything but ASCII digits, or names a value past
/// `u64::MAX`.
pub(crate) fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &byte| {
        if byte.is_ascii_digit() {
            value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
        } else {
            None
        }
    })
}

/// The value of `digits` in canonical form, the one spelling each value has: as
/// [`parse_u64`], and without leading zeros (`0` itself is canonical, `00` and `01` are not).
pub(crate) fn parse_canonical_u64(digits: &[u8]) -> Option<u64> {
    match digits {
        [b'0', _, ..] => None,
        _ => parse_u64(digits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs that neither parser accepts.
    const NOT_NUMBERS: [&[u8]; 12] = [
        b"",
        b" ",
        b"+1",
        b"-1",
        b"1 ",
        b" 1",
        b"1.5",
        b"1e3",
        b"0x1",
        b"a",
        "\u{661}".as_bytes(),  // ARABIC-INDIC DIGIT ONE
        "\u{ff11}".as_bytes(), // FULLWIDTH DIGIT ONE
    ];

    #[test]
    fn digits_parse_up_to_u64_max() {
        for parse in [parse_u64, parse_canonical_u64] {
            assert_eq!(parse(b"0"), Some(0));
            assert_eq!(parse(b"7"), Some(7));
            assert_eq!(parse(b"1500"), Some(1500));
            assert_eq!(parse(b"18446744073709551615"), Some(u64::MAX));
            assert_eq!(parse(b"18446744073709551616"), None, "u64::MAX + 1");
            assert_eq!(parse(b"99999999999999999999999"), None);
            for text in NOT_NUMBERS {
                assert_eq!(parse(text), None, "{:?}", String::from_utf8_lossy(text));
            }
        }
    }

    #[test]
    fn only_the_canonical_parser_refuses_leading_zeros() {
        for (text, value) in [
            (&b"00"[..], 0),
            (b"01", 1),
            (b"007", 7),
            (b"018446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_u64(text), Some(value));
            assert_eq!(parse_canonical_u64(text), None);
        }
        assert_eq!(parse_u64(b"0018446744073709551616"), None);
    }

    #[test]
    fn no_byte_sequence_panics() {
        let mut inputs: Vec<Vec<u8>> = (0..=u8::MAX).map(|b| vec![b]).collect();
        inputs.push(vec![b'0'; 1000]);
        inputs.push(vec![b'9'; 1000]);
        inputs.push(vec![0xff; 30]);
        for input in inputs {
            let loose = parse_u64(&input);
            let canonical = parse_canonical_u64(&input);
            assert!(canonical.is_none() || canonical == loose);
        }
    }
}
