//! Order-preserving key encoding.
//!
//! Keys in the key/value engine are compared as raw bytes. This module encodes typed values so
//! that the byte order of the encodings equals the order of the values:
//!
//! - `u64`: 8 bytes big-endian.
//! - `i64`: 8 bytes big-endian with the sign bit flipped, so negative numbers sort first.
//! - `f64`: 8 bytes big-endian; positive numbers have the sign bit flipped, negative numbers have
//!   every bit flipped. `-0.0` is written as `0.0` and every NaN as one canonical NaN, which
//!   sorts above `+inf` (as in PostgreSQL).
//! - `bool`: one byte, 0 or 1.
//! - byte strings: every `0x00` is escaped as `0x00 0xff` and the string ends with `0x00 0x00`.
//!   The terminator sorts below any continuation, so a string sorts before every longer string
//!   that starts with it, and an encoded string is never a prefix of another encoded string.
//!
//! Every encoding is self-delimiting, so a tuple is encoded by concatenating its elements and
//! tuples compare element by element. [`KeyReader`] decodes in the same order.

use super::DecodeError;

/// Appends a `u64` in big-endian order.
pub fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends an `i64` so that byte order equals numeric order.
pub fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&((value as u64) ^ (1 << 63)).to_be_bytes());
}

/// Appends an `f64` so that byte order equals numeric order (NaN largest, `-0.0 == 0.0`).
pub fn put_f64(out: &mut Vec<u8>, value: f64) {
    let value = if value == 0.0 {
        0.0 // normalizes -0.0
    } else if value.is_nan() {
        f64::NAN
    } else {
        value
    };
    let bits = value.to_bits();
    let bits = if bits >> 63 == 0 { bits ^ (1 << 63) } else { !bits };
    out.extend_from_slice(&bits.to_be_bytes());
}

/// Appends a `bool` as one byte.
pub fn put_bool(out: &mut Vec<u8>, value: bool) {
    out.push(value as u8);
}

/// Appends a byte string, escaped and terminated (see the module docs).
pub fn put_bytes(out: &mut Vec<u8>, value: &[u8]) {
    put_bytes_unterminated(out, value);
    out.extend_from_slice(&[0x00, 0x00]);
}

/// Appends a byte string escaped but without its terminator. The result is a prefix of the
/// encoding of every string that starts with `value`, which is what a prefix scan needs.
pub fn put_bytes_unterminated(out: &mut Vec<u8>, value: &[u8]) {
    out.reserve(value.len() + 2);
    for chunk in value.split_inclusive(|b| *b == 0) {
        out.extend_from_slice(chunk);
        if chunk.last() == Some(&0) {
            out.push(0xff);
        }
    }
}

/// Appends a string as its UTF-8 bytes (see [`put_bytes`]).
pub fn put_str(out: &mut Vec<u8>, value: &str) {
    put_bytes(out, value.as_bytes());
}

/// Decodes keys written with the `put_*` functions, in the order they were written.
pub struct KeyReader<'a> {
    /// The bytes not yet decoded.
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    /// Starts decoding `key` from its first byte.
    pub fn new(key: &'a [u8]) -> Self {
        Self { rest: key }
    }

    /// The bytes not yet decoded.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// True when every byte has been decoded.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Fails unless every byte has been decoded.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(DecodeError(format!("{n} unexpected trailing key bytes"))),
        }
    }

    /// Takes the next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError(format!(
                "key ends early: wanted {n} bytes, {} left",
                self.rest.len()
            )));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Takes the next 8 bytes as an array.
    fn take8(&mut self) -> Result<[u8; 8], DecodeError> {
        let bytes = self.take(8)?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    /// Decodes one byte (a tag).
    pub fn get_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Decodes a `u64` written by [`put_u64`].
    pub fn get_u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take8()?))
    }

    /// Decodes an `i64` written by [`put_i64`].
    pub fn get_i64(&mut self) -> Result<i64, DecodeError> {
        Ok((u64::from_be_bytes(self.take8()?) ^ (1 << 63)) as i64)
    }

    /// Decodes an `f64` written by [`put_f64`].
    pub fn get_f64(&mut self) -> Result<f64, DecodeError> {
        let bits = u64::from_be_bytes(self.take8()?);
        let bits = if bits >> 63 == 1 { bits ^ (1 << 63) } else { !bits };
        Ok(f64::from_bits(bits))
    }

    /// Decodes a `bool` written by [`put_bool`].
    pub fn get_bool(&mut self) -> Result<bool, DecodeError> {
        match self.get_u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError(format!("invalid bool byte {b:#04x}"))),
        }
    }

    /// Decodes a byte string written by [`put_bytes`].
    pub fn get_bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let mut out = Vec::with_capacity(self.rest.len());
        loop {
            let Some(zero) = self.rest.iter().position(|b| *b == 0) else {
                return Err(DecodeError("unterminated byte string in key".into()));
            };
            out.extend_from_slice(&self.rest[..zero]);
            match self.rest.get(zero + 1) {
                Some(0x00) => {
                    self.rest = &self.rest[zero + 2..];
                    return Ok(out);
                }
                Some(0xff) => {
                    out.push(0);
                    self.rest = &self.rest[zero + 2..];
                }
                _ => return Err(DecodeError("invalid escape in key byte string".into())),
            }
        }
    }

    /// Decodes a string written by [`put_str`].
    pub fn get_string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.get_bytes()?)
            .map_err(|_| DecodeError("key string is not UTF-8".into()))
    }
}

/// Returns the smallest byte string greater than every string that starts with `prefix`, or
/// `None` when there is none (the prefix is empty or all `0xff`). Used as the exclusive end of a
/// prefix scan.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|b| *b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc_i64(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_i64(&mut out, v);
        out
    }
    fn enc_f64(v: f64) -> Vec<u8> {
        let mut out = Vec::new();
        put_f64(&mut out, v);
        out
    }
    fn enc_bytes(v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, v);
        out
    }

    #[test]
    fn float_special_values_order_like_postgres() {
        let ordered =
            [f64::NEG_INFINITY, -1.5, -f64::MIN_POSITIVE, 0.0, 1e-300, 2.0, f64::INFINITY];
        for pair in ordered.windows(2) {
            assert!(enc_f64(pair[0]) < enc_f64(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(enc_f64(-0.0), enc_f64(0.0));
        assert!(enc_f64(f64::NAN) > enc_f64(f64::INFINITY));
        assert_eq!(enc_f64(f64::NAN), enc_f64(-f64::NAN));
    }

    #[test]
    fn byte_strings_escape_zero_and_terminate() {
        assert_eq!(enc_bytes(b"a\x00b"), vec![b'a', 0, 0xff, b'b', 0, 0]);
        assert!(enc_bytes(b"ab") < enc_bytes(b"ab\x00"));
        assert!(enc_bytes(b"") < enc_bytes(b"\x00"));
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(&[]), None);
    }

    #[test]
    fn reader_rejects_truncated_and_trailing_input() {
        assert!(KeyReader::new(&[1, 2, 3]).get_u64().is_err());
        assert!(KeyReader::new(b"abc").get_bytes().is_err());
        assert!(KeyReader::new(&[0, 7]).get_bytes().is_err());
        assert!(KeyReader::new(&[2]).get_bool().is_err());
        assert!(KeyReader::new(&[1]).finish().is_err());
    }

    proptest! {
        #[test]
        fn i64_order_and_roundtrip(a: i64, b: i64) {
            prop_assert_eq!(a.cmp(&b), enc_i64(a).cmp(&enc_i64(b)));
            prop_assert_eq!(KeyReader::new(&enc_i64(a)).get_i64().unwrap(), a);
        }

        #[test]
        fn f64_order_and_roundtrip(a: f64, b: f64) {
            prop_assume!(!a.is_nan() && !b.is_nan());
            let (na, nb) = (if a == 0.0 { 0.0 } else { a }, if b == 0.0 { 0.0 } else { b });
            prop_assert_eq!(na.total_cmp(&nb), enc_f64(a).cmp(&enc_f64(b)));
            prop_assert_eq!(KeyReader::new(&enc_f64(a)).get_f64().unwrap(), na);
        }

        #[test]
        fn u64_order_and_roundtrip(a: u64, b: u64) {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            put_u64(&mut ea, a);
            put_u64(&mut eb, b);
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            prop_assert_eq!(KeyReader::new(&ea).get_u64().unwrap(), a);
        }

        #[test]
        fn bytes_order_and_roundtrip(a: Vec<u8>, b: Vec<u8>) {
            prop_assert_eq!(a.cmp(&b), enc_bytes(&a).cmp(&enc_bytes(&b)));
            let encoded = enc_bytes(&a);
            let mut reader = KeyReader::new(&encoded);
            prop_assert_eq!(reader.get_bytes().unwrap(), a);
            prop_assert!(reader.is_empty());
        }

        #[test]
        fn unterminated_bytes_prefix_encoding(a: Vec<u8>, b: Vec<u8>) {
            let mut prefix = Vec::new();
            put_bytes_unterminated(&mut prefix, &a);
            let joined = [a.as_slice(), b.as_slice()].concat();
            prop_assert!(enc_bytes(&joined).starts_with(&prefix));
        }

        #[test]
        fn tuples_order_element_by_element(a: (i64, Vec<u8>), b: (i64, Vec<u8>)) {
            let enc = |t: &(i64, Vec<u8>)| {
                let mut out = Vec::new();
                put_i64(&mut out, t.0);
                put_bytes(&mut out, &t.1);
                out
            };
            prop_assert_eq!(a.cmp(&b), enc(&a).cmp(&enc(&b)));
        }

        #[test]
        fn reader_never_panics_on_garbage(bytes: Vec<u8>) {
            let mut reader = KeyReader::new(&bytes);
            let _ = reader.get_bytes();
            let _ = reader.get_f64();
            let _ = reader.get_bool();
            let _ = reader.get_string();
        }
    }
}
