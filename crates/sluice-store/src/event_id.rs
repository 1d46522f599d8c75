//! Event ids: globally unique, time-ordered, and self-locating.
//!
//! An id is 128 bits: 48 bits of milliseconds since the epoch, the 64-bit [`Sequence`],
//! and a 16-bit salt chosen when the data directory was created. The text form is
//! `evt_` followed by 26 Crockford base32 characters (like a ULID), so ids sort by time
//! as strings too.
//!
//! Why not a random UUID: the sequence inside the id leads straight to the record (a
//! binary search over segments and an offset array), so the engine needs no per-event
//! id → location hash map. The salt keeps ids of two stores apart, and the timestamp keeps
//! ids ordered for clients that sort them.

use std::fmt;

use crate::types::{Sequence, UnixMs};

const PREFIX: &str = "evt_";
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ENCODED_LEN: usize = 26;

/// A 128-bit event id; see the module docs for its layout.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(u128);

impl EventId {
    /// Builds an id from its parts. `ms` is truncated to 48 bits (year 10889).
    pub fn new(ms: UnixMs, seq: Sequence, salt: u16) -> Self {
        let ms = (ms.max(0) as u128) & ((1 << 48) - 1);
        EventId((ms << 80) | ((seq.0 as u128) << 16) | salt as u128)
    }

    /// The id's 128 bits, for a binary record.
    pub fn to_u128(self) -> u128 {
        self.0
    }

    /// An id from its 128 bits, as [`EventId::to_u128`] gave them.
    pub fn from_u128(bits: u128) -> EventId {
        EventId(bits)
    }

    /// The sequence that locates the event.
    pub fn sequence(self) -> Sequence {
        Sequence((self.0 >> 16) as u64)
    }

    /// The receive time embedded in the id.
    pub fn millis(self) -> UnixMs {
        (self.0 >> 80) as UnixMs
    }

    /// The salt of the store that issued the id.
    pub fn salt(self) -> u16 {
        self.0 as u16
    }

    /// Parses the `evt_…` text form; `None` for anything that is not exactly one.
    ///
    /// Only the canonical spelling is accepted: the prefix as written and the digits in
    /// upper case, exactly as [`EventId::encode`] writes them. Crockford base32 would
    /// also read lower case; accepting it would give each id many spellings, and an id
    /// that is not byte for byte one Sluice issued must name no event (a client that
    /// mangled an id must get a 404, never act on some event).
    pub fn parse(text: &str) -> Option<Self> {
        let body = text.strip_prefix(PREFIX)?.as_bytes();
        if body.len() != ENCODED_LEN {
            return None;
        }
        // 26 characters carry 130 bits; the top two must be zero for a 128-bit value.
        let mut value: u128 = 0;
        for (i, &c) in body.iter().enumerate() {
            let digit = decode_digit(c)? as u128;
            if i == 0 && digit > 3 {
                return None;
            }
            value = (value << 5) | digit;
        }
        Some(EventId(value))
    }

    /// Writes the text form into a fixed buffer, for allocation-free formatting.
    pub fn encode(self, out: &mut [u8; 30]) -> &str {
        out[..4].copy_from_slice(PREFIX.as_bytes());
        let mut value = self.0;
        for i in (0..ENCODED_LEN).rev() {
            out[4 + i] = ALPHABET[(value & 31) as usize];
            value >>= 5;
        }
        match std::str::from_utf8(&out[..]) {
            Ok(text) => text,
            // Every byte written above is ASCII, from ALPHABET or PREFIX.
            Err(_) => unreachable!("an encoded id is ASCII"),
        }
    }
}

fn decode_digit(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u8)
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 30];
        f.write_str(self.encode(&mut buf))
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders_by_time() {
        let a = EventId::new(1_700_000_000_000, Sequence(42), 0xBEEF);
        let b = EventId::new(1_700_000_000_001, Sequence(7), 0x0001);
        assert_eq!(EventId::parse(&a.to_string()), Some(a));
        assert_eq!(a.sequence(), Sequence(42));
        assert_eq!(a.salt(), 0xBEEF);
        assert_eq!(a.millis(), 1_700_000_000_000);
        assert!(a.to_string() < b.to_string());
        assert!(a < b);
    }

    #[test]
    fn rejects_malformed_text() {
        let good = EventId::new(5, Sequence(9), 1).to_string();
        assert!(EventId::parse(&good[1..]).is_none());
        assert!(EventId::parse("evt_").is_none());
        assert!(EventId::parse(&format!("{good}0")).is_none());
        assert!(EventId::parse(&good.replace('0', "U")).is_none());
        // Overflowing 128 bits.
        assert!(EventId::parse("evt_ZZZZZZZZZZZZZZZZZZZZZZZZZZ").is_none());
        // Another spelling of the same value is not the id.
        let id = EventId::new(1_700_000_000_000, Sequence(0xABCDEF), 0xBEEF).to_string();
        assert!(id.bytes().any(|b| b.is_ascii_uppercase()), "{id}");
        assert!(EventId::parse(&id.to_ascii_lowercase()).is_none());
        assert!(EventId::parse(&id.replacen("evt_", "EVT_", 1)).is_none());
    }
}
