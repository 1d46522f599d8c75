//! Page cursors: opaque to clients, and refused when altered.
//!
//! A cursor names a position in a tenant's log. Handing out the raw sequence number
//! would let a client that mangled one (a truncated copy, a typo) silently skip or repeat
//! events, and would let a cursor travel from one listing or tenant to another. So a
//! cursor is the sequence plus a MAC over it, the tenant and the listing it came from,
//! keyed by the catalog's token secret: anything but a cursor Sluice issued for this
//! listing of this tenant is a `400 invalid_cursor`, never some other position.
//!
//! ```text
//! cursor := "cur_" base64url(seq u64 BE | tag 12)      (31 characters)
//! tag    := HMAC-SHA256(secret, "sluice-cursor-v1" | listing u8 | scope u32 BE | tenant u32 BE
//!                   | seq u64 BE)[..12]
//! ```
//!
//! `scope` is the subscription (or consumer) a listing belongs to, so a cursor of one
//! subscription's attempts does not page another's, nor one consumer's inbox another's.
//! A lease's scope is its generation, and a named consumer's lease also takes its
//! consumer id after the scope (`| consumer u32 BE`), so a lease of one consumer acks
//! nothing in another; the default consumer's (0) is left out, so tokens issued before
//! named consumers existed stay valid.
//!
//! 96 bits of tag: a forgery has one chance in 2^96 per try.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sluice_store::{ConsumerId, InboxKey, Sequence, TenantId};
use subtle::ConstantTimeEq;

use crate::problem::{Code, Problem};

const PREFIX: &str = "cur_";
const TAG_BYTES: usize = 12;
const RAW_BYTES: usize = 8 + TAG_BYTES;
const DOMAIN: &[u8] = b"sluice-cursor-v1";

/// Which listing a cursor pages through: a cursor of one is refused by the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `GET /v1/inbox` of this consumer.
    Inbox(ConsumerId),
    /// `GET /v1/subscriptions/{id}/attempts` of the subscription with this key.
    Attempts(u32),
    /// `GET /v1/subscriptions/{id}/dead-letters` of the subscription with this key.
    DeadLetters(u32),
    /// `GET /v1/events` (the history).
    History,
    /// `GET /v1/inbox/dead-letters` of this consumer.
    InboxDeadLetters(ConsumerId),
    /// A lease of one event in a consumer's inbox, of this generation: not a listing,
    /// but a token signed the same way (see [`CursorKey::encode_lease`]).
    Lease(u32, ConsumerId),
}

impl Listing {
    /// Kind, scope, and the consumer a lease is in (0: none, left out of the MAC).
    fn domain(self) -> (u8, u32, u32) {
        match self {
            Listing::Inbox(c) => (1, c.0, 0),
            Listing::Attempts(sub) => (2, sub, 0),
            Listing::DeadLetters(sub) => (3, sub, 0),
            Listing::History => (4, 0, 0),
            Listing::InboxDeadLetters(c) => (6, c.0, 0),
            Listing::Lease(generation, c) => (5, generation, c.0),
        }
    }
}

/// The key cursors are signed with; see the module docs.
#[derive(Clone)]
pub struct CursorKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

impl CursorKey {
    /// A key from the catalog's token secret.
    pub fn new(secret: &[u8]) -> CursorKey {
        // RFC 2104: a key up to the block size is zero-padded to it, a longer one is
        // hashed first. Doing that here gives the block-sized key `KeyInit::new` takes,
        // with no fallible constructor on the path.
        let mut block = [0u8; 64];
        if secret.len() <= block.len() {
            block[..secret.len()].copy_from_slice(secret);
        } else {
            block[..32].copy_from_slice(&Sha256::digest(secret));
        }
        CursorKey {
            mac: <Hmac<Sha256> as KeyInit>::new(&block.into()),
        }
    }

    fn tag(&self, listing: Listing, tenant: TenantId, seq: Sequence) -> [u8; TAG_BYTES] {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        let (kind, scope, consumer) = listing.domain();
        mac.update(&[kind]);
        mac.update(&scope.to_be_bytes());
        if consumer != 0 {
            mac.update(&consumer.to_be_bytes());
        }
        mac.update(&tenant.0.to_be_bytes());
        mac.update(&seq.0.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// The cursor for the position after `seq` in `tenant`'s `listing`.
    pub fn encode(&self, listing: Listing, tenant: TenantId, seq: Sequence) -> String {
        let mut raw = [0u8; RAW_BYTES];
        raw[..8].copy_from_slice(&seq.0.to_be_bytes());
        raw[8..].copy_from_slice(&self.tag(listing, tenant, seq));
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// The position a cursor names, if it is exactly one this key issued for `tenant`'s
    /// `listing`; otherwise a `400 invalid_cursor` problem.
    pub fn decode(
        &self,
        listing: Listing,
        tenant: TenantId,
        text: &str,
    ) -> Result<Sequence, Problem> {
        let invalid = || {
            Problem::new(
                Code::InvalidCursor,
                "this cursor was not issued for this listing: pass next_cursor exactly as a previous page returned it (cursors are opaque, and are refused when altered or used by another tenant)",
            )
        };
        let raw: [u8; RAW_BYTES] = unpack(text, PREFIX).ok_or_else(invalid)?;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&raw[..8]);
        let seq = Sequence(u64::from_be_bytes(seq));
        let expected = self.tag(listing, tenant, seq);
        if bool::from(expected.ct_eq(&raw[8..])) {
            Ok(seq)
        } else {
            Err(invalid())
        }
    }
}

/// The `N` bytes of a token `prefix` + base64url, if it is exactly that. A decoder may
/// accept non-canonical trailing bits; re-encoding must give back exactly the text, so
/// that each token has one spelling.
fn unpack<const N: usize>(text: &str, prefix: &str) -> Option<[u8; N]> {
    let body = text.strip_prefix(prefix)?;
    let mut raw = [0u8; N];
    match URL_SAFE_NO_PAD.decode_slice(body, &mut raw) {
        Ok(n) if n == N => {}
        _ => return None,
    }
    (URL_SAFE_NO_PAD.encode(raw) == body).then_some(raw)
}

/// Lease ids: `"lse_" base64url(seq u64 BE | generation u32 BE | tag 12)` (35
/// characters), the tag as a cursor's with [`Listing::Lease`]. The event's sequence is
/// in it so that a lease id sent with another event's id is refused, not compared.
const LEASE_PREFIX: &str = "lse_";
const LEASE_RAW_BYTES: usize = 12 + TAG_BYTES;

impl CursorKey {
    /// The `lease_id` for event `seq` in `inbox`, leased at `generation` (its delivery
    /// count after the lease).
    pub fn encode_lease(&self, inbox: InboxKey, seq: Sequence, generation: u32) -> String {
        let mut raw = [0u8; LEASE_RAW_BYTES];
        raw[..8].copy_from_slice(&seq.0.to_be_bytes());
        raw[8..12].copy_from_slice(&generation.to_be_bytes());
        let listing = Listing::Lease(generation, inbox.consumer);
        raw[12..].copy_from_slice(&self.tag(listing, inbox.tenant, seq));
        format!("{LEASE_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// The generation a `lease_id` names, if this key issued it for event `seq` in
    /// `inbox`; otherwise a `400 invalid_lease` problem.
    pub fn decode_lease(&self, inbox: InboxKey, seq: Sequence, text: &str) -> Result<u32, Problem> {
        let invalid = || {
            Problem::new(
                Code::InvalidLease,
                "this lease_id was not issued for this event: send the lease_id the lease returned with it, unaltered",
            )
        };
        let raw: [u8; LEASE_RAW_BYTES] = unpack(text, LEASE_PREFIX).ok_or_else(invalid)?;
        let mut at = [0u8; 8];
        at.copy_from_slice(&raw[..8]);
        let mut generation = [0u8; 4];
        generation.copy_from_slice(&raw[8..12]);
        let generation = u32::from_be_bytes(generation);
        if u64::from_be_bytes(at) != seq.0 {
            return Err(invalid());
        }
        let expected = self.tag(
            Listing::Lease(generation, inbox.consumer),
            inbox.tenant,
            seq,
        );
        if bool::from(expected.ct_eq(&raw[12..])) {
            Ok(generation)
        } else {
            Err(invalid())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_tenants_and_alterations() {
        let key = CursorKey::new(b"secret");
        let text = key.encode(
            Listing::Inbox(ConsumerId::DEFAULT),
            TenantId(1),
            Sequence(42),
        );
        assert_eq!(text.len(), 31);
        assert_eq!(
            key.decode(Listing::Inbox(ConsumerId::DEFAULT), TenantId(1), &text)
                .ok(),
            Some(Sequence(42))
        );
        assert!(key
            .decode(Listing::Inbox(ConsumerId::DEFAULT), TenantId(2), &text)
            .is_err());
        assert!(key
            .decode(Listing::Attempts(0), TenantId(1), &text)
            .is_err());
        let sub = key.encode(Listing::Attempts(7), TenantId(1), Sequence(42));
        assert!(key.decode(Listing::Attempts(8), TenantId(1), &sub).is_err());
        assert!(key
            .decode(Listing::DeadLetters(7), TenantId(1), &sub)
            .is_err());
        assert!(CursorKey::new(b"other")
            .decode(Listing::Inbox(ConsumerId::DEFAULT), TenantId(1), &text)
            .is_err());
        for at in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).expect("ascii");
            let err = key
                .decode(Listing::Inbox(ConsumerId::DEFAULT), TenantId(1), &altered)
                .expect_err(&altered);
            assert_eq!(err.code, Code::InvalidCursor);
        }
    }

    #[test]
    fn lease_ids_name_one_event_and_generation() {
        let key = CursorKey::new(b"secret");
        let text = key.encode_lease(TenantId(1).into(), Sequence(42), 3);
        assert_eq!(text.len(), 36);
        assert_eq!(
            key.decode_lease(TenantId(1).into(), Sequence(42), &text)
                .ok(),
            Some(3)
        );
        // Another event, another tenant, another key: refused.
        assert!(key
            .decode_lease(TenantId(1).into(), Sequence(43), &text)
            .is_err());
        assert!(key
            .decode_lease(TenantId(2).into(), Sequence(42), &text)
            .is_err());
        assert!(CursorKey::new(b"other")
            .decode_lease(TenantId(1).into(), Sequence(42), &text)
            .is_err());
        // Another consumer's lease of the same event and generation: refused, and a
        // named consumer's is refused by the default one.
        let named = InboxKey {
            tenant: TenantId(1),
            consumer: ConsumerId(5),
        };
        assert!(key.decode_lease(named, Sequence(42), &text).is_err());
        let theirs = key.encode_lease(named, Sequence(42), 3);
        assert_eq!(key.decode_lease(named, Sequence(42), &theirs).ok(), Some(3));
        assert!(key
            .decode_lease(TenantId(1).into(), Sequence(42), &theirs)
            .is_err());
        let other = InboxKey {
            consumer: ConsumerId(6),
            ..named
        };
        assert!(key.decode_lease(other, Sequence(42), &theirs).is_err());
        // One consumer's inbox cursor does not page another's.
        let c5 = key.encode(Listing::Inbox(ConsumerId(5)), TenantId(1), Sequence(42));
        assert!(key
            .decode(Listing::Inbox(ConsumerId(6)), TenantId(1), &c5)
            .is_err());
        // A cursor is not a lease id.
        let cursor = key.encode(
            Listing::Inbox(ConsumerId::DEFAULT),
            TenantId(1),
            Sequence(42),
        );
        assert!(key
            .decode_lease(TenantId(1).into(), Sequence(42), &cursor)
            .is_err());
        for at in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).expect("ascii");
            let err = key
                .decode_lease(TenantId(1).into(), Sequence(42), &altered)
                .expect_err(&altered);
            assert_eq!(err.code, Code::InvalidLease);
        }
    }
}
