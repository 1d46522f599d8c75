//! A small JSON writer for responses.
//!
//! Responses embed stored payloads verbatim, which serde cannot do without first
//! allocating a `RawValue` per payload; writing the envelope by hand keeps the hot read
//! and ingest responses to one buffer.

use bytes::{BufMut, Bytes, BytesMut};

/// Writes JSON into one growing buffer, inserting commas where needed.
#[derive(Debug)]
pub struct JsonWriter {
    buf: BytesMut,
    /// Whether the next value in the current container needs a leading comma.
    comma: bool,
}

thread_local! {
    /// The last timestamp this thread formatted, and its text. The events of one batch
    /// share one receive time, so a 1,000-item answer formats it once; at tens of
    /// thousands of requests a second, most single-event receipts share their
    /// millisecond with the one before; and one in the same second only has its three
    /// millisecond digits rewritten.
    static LAST_TIMESTAMP: std::cell::Cell<Option<(i64, Timestamp)>> =
        const { std::cell::Cell::new(None) };
}

/// An RFC 3339 timestamp with milliseconds, formatted on the stack.
#[derive(Debug, Clone, Copy)]
struct Timestamp {
    text: [u8; 32],
    len: usize,
}

impl std::fmt::Write for Timestamp {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.text.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl JsonWriter {
    /// A writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        JsonWriter {
            buf: BytesMut::with_capacity(n),
            comma: false,
        }
    }

    fn sep(&mut self) {
        if self.comma {
            self.buf.put_u8(b',');
        }
        self.comma = true;
    }

    /// `{`
    pub fn begin_object(&mut self) {
        self.sep();
        self.buf.put_u8(b'{');
        self.comma = false;
    }

    /// `}`
    pub fn end_object(&mut self) {
        self.buf.put_u8(b'}');
        self.comma = true;
    }

    /// `[`
    pub fn begin_array(&mut self) {
        self.sep();
        self.buf.put_u8(b'[');
        self.comma = false;
    }

    /// `]`
    pub fn end_array(&mut self) {
        self.buf.put_u8(b']');
        self.comma = true;
    }

    /// An object key; the value follows. Keys are the API's own field names, which
    /// never need escaping, so they are copied without the per-byte check.
    pub fn key(&mut self, key: &'static str) {
        self.sep();
        self.write_plain(key);
        self.buf.put_u8(b':');
        self.comma = false;
    }

    /// An object key that comes from data (a user's header name), escaped.
    pub fn escaped_key(&mut self, key: &str) {
        self.sep();
        self.write_escaped(key);
        self.buf.put_u8(b':');
        self.comma = false;
    }

    /// `"key": "value"` for a value Sluice generated that never needs escaping (event
    /// ids), copied without the per-byte check: a batch answer writes one per item.
    pub fn field_token(&mut self, key: &'static str, value: &str) {
        self.key(key);
        self.sep();
        self.write_plain(value);
    }

    fn write_plain(&mut self, s: &str) {
        debug_assert!(
            s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'),
            "{s:?} needs escaping"
        );
        self.buf.put_u8(b'"');
        self.buf.put_slice(s.as_bytes());
        self.buf.put_u8(b'"');
    }

    /// A string value.
    pub fn str(&mut self, value: &str) {
        self.sep();
        self.write_escaped(value);
    }

    /// Bytes that are already valid JSON, written verbatim.
    pub fn raw(&mut self, json: &[u8]) {
        self.sep();
        self.buf.put_slice(json);
    }

    /// `"key": "value"`
    pub fn field_str(&mut self, key: &'static str, value: &str) {
        self.key(key);
        self.str(value);
    }

    /// `"key": value` for an integer.
    pub fn field_u64(&mut self, key: &'static str, value: u64) {
        self.key(key);
        self.u64(value);
    }

    /// An integer value, formatted on the stack.
    pub fn u64(&mut self, mut value: u64) {
        self.sep();
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.buf.put_slice(&digits[i..]);
    }

    /// `"key": true|false`
    pub fn field_bool(&mut self, key: &'static str, value: bool) {
        self.key(key);
        self.raw(if value { b"true" } else { b"false" });
    }

    /// `"key": "<RFC 3339 UTC with milliseconds>"`, formatted straight into the buffer.
    pub fn field_timestamp(&mut self, key: &'static str, ms: i64) {
        use std::fmt::Write;
        self.key(key);
        self.sep();
        let text = match LAST_TIMESTAMP.get() {
            Some((last, text)) if last == ms => text,
            // Only for times after the epoch: `system_time` formats every earlier one
            // as the epoch itself, which a rewritten millisecond would contradict.
            Some((last, mut text))
                if ms >= 0 && last.div_euclid(1000) == ms.div_euclid(1000) && text.len == 24 =>
            {
                // "YYYY-MM-DDTHH:MM:SS.mmmZ": the same second, so only `mmm` differs.
                let milli = ms.rem_euclid(1000) as u32; // 0..=999
                text.text[20] = b'0' + (milli / 100) as u8;
                text.text[21] = b'0' + (milli / 10 % 10) as u8;
                text.text[22] = b'0' + (milli % 10) as u8;
                LAST_TIMESTAMP.set(Some((ms, text)));
                text
            }
            _ => {
                let mut text = Timestamp {
                    text: [0; 32],
                    len: 0,
                };
                // 24 bytes ("2026-01-02T03:04:05.678Z") always fit in 32. Years past
                // 9999 cannot come from a millisecond clock in practice; humantime
                // refuses them, and the field is then written empty, never overflowed.
                let _ = write!(
                    text,
                    "{}",
                    humantime::format_rfc3339_millis(system_time(ms))
                );
                LAST_TIMESTAMP.set(Some((ms, text)));
                text
            }
        };
        self.buf.put_u8(b'"');
        self.buf.put_slice(&text.text[..text.len]);
        self.buf.put_u8(b'"');
    }

    /// `"key": null`
    pub fn field_null(&mut self, key: &'static str) {
        self.key(key);
        self.raw(b"null");
    }

    /// `"key": "value"` or `"key": null`.
    pub fn field_opt_str(&mut self, key: &'static str, value: Option<&str>) {
        match value {
            Some(v) => self.field_str(key, v),
            None => self.field_null(key),
        }
    }

    /// The finished document.
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }

    fn write_escaped(&mut self, s: &str) {
        self.buf.put_u8(b'"');
        let bytes = s.as_bytes();
        // Keys, ids and timestamps never need escaping: check without branching per
        // byte (this loop vectorises), then copy in one go.
        let plain = bytes
            .iter()
            .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
        if plain {
            self.buf.put_slice(bytes);
            self.buf.put_u8(b'"');
            return;
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: Option<&[u8]> = match b {
                b'"' => Some(b"\\\""),
                b'\\' => Some(b"\\\\"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                b'\t' => Some(b"\\t"),
                0..=0x1f => None,
                _ => continue,
            };
            self.buf.put_slice(&bytes[start..i]);
            match escape {
                Some(e) => self.buf.put_slice(e),
                None => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.buf.put_slice(b"\\u00");
                    self.buf.put_u8(HEX[(b >> 4) as usize]);
                    self.buf.put_u8(HEX[(b & 15) as usize]);
                }
            }
            start = i + 1;
        }
        self.buf.put_slice(&bytes[start..]);
        self.buf.put_u8(b'"');
    }
}

/// Milliseconds since the epoch as a `SystemTime` (negative clamps to the epoch).
fn system_time(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}

/// Formats milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = system_time(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_reuse_their_second_and_match_a_fresh_format() {
        // Every millisecond across two second boundaries, then a jump back, in order
        // and out of it: the cached second must never leak into another.
        let base = 1_765_000_000_998;
        // Before the epoch, every time is written as the epoch (`system_time`).
        let before_epoch = [-5, -3, -1_001, -999];
        for ms in (base..base + 2_004)
            .chain([base - 1, base + 5_000, 0, base])
            .chain(before_epoch)
        {
            let mut w = JsonWriter::with_capacity(64);
            w.begin_object();
            w.field_timestamp("t", ms);
            w.end_object();
            let expected = format!("{{\"t\":\"{}\"}}", rfc3339_ms(ms));
            assert_eq!(&w.finish()[..], expected.as_bytes(), "at {ms}");
        }
    }

    #[test]
    fn writes_nested_json_with_escapes() {
        let mut w = JsonWriter::with_capacity(16);
        w.begin_object();
        w.field_str("a", "q\"\\\n\u{1}é");
        w.field_u64("n", 1234567890);
        w.key("list");
        w.begin_array();
        w.raw(br#"{"x":1}"#);
        w.str("s");
        w.end_array();
        w.field_null("z");
        w.field_timestamp("t", 1_700_000_000_123);
        // The one-entry cache must serve a repeat and step aside for a new value.
        w.field_timestamp("t_again", 1_700_000_000_123);
        w.field_timestamp("t_other", 1);
        w.end_object();
        let out = w.finish();
        let parsed: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(parsed["a"], "q\"\\\n\u{1}é");
        assert_eq!(parsed["n"], 1234567890);
        assert_eq!(parsed["list"][0]["x"], 1);
        assert_eq!(parsed["list"][1], "s");
        assert!(parsed["z"].is_null());
        assert_eq!(parsed["t"], "2023-11-14T22:13:20.123Z");
        assert_eq!(parsed["t_again"], "2023-11-14T22:13:20.123Z");
        assert_eq!(parsed["t_other"], "1970-01-01T00:00:00.001Z");
    }

    #[test]
    fn formats_timestamps() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
