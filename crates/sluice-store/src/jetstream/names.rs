//! Where things live on the cluster: stream, subject and bucket names, all derived from
//! one namespace (`sluice` by default), so two Sluice deployments (or two test cases)
//! can share a cluster without seeing each other.
//!
//! - partition streams `SLUICE_EV_<p>`, each holding
//!   - events on `sluice.ev.<p>.<tenant>.<event type>`, the type escaped into one
//!     subject token, so `nats stream view` and subject filters work per tenant and type;
//!   - every other change of that partition's tenants (leases, acks, deliveries) on
//!     `sluice.op.<p>.<tenant>`;
//! - the catalog bucket `sluice_catalog` (JetStream KV): keys `catalog` and `genesis`.

use crate::types::TenantId;

/// The names of one deployment's streams, subjects and bucket.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    namespace: String,
}

impl Names {
    /// Names under `namespace`: lower-case letters, digits and `_` (checked by
    /// [`Names::valid_namespace`]).
    pub(crate) fn new(namespace: &str) -> Names {
        Names {
            namespace: namespace.to_owned(),
        }
    }

    /// Whether `namespace` can name streams, subjects and a bucket: 1–32 characters
    /// of `[a-z0-9_]`.
    pub(crate) fn valid_namespace(namespace: &str) -> bool {
        (1..=32).contains(&namespace.len())
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    /// Partition `p`'s stream.
    pub(crate) fn stream(&self, p: u32) -> String {
        format!("{}_EV_{p}", self.namespace.to_ascii_uppercase())
    }

    /// The subjects partition `p`'s stream holds.
    pub(crate) fn stream_subjects(&self, p: u32) -> Vec<String> {
        vec![
            format!("{}.ev.{p}.>", self.namespace),
            format!("{}.op.{p}.>", self.namespace),
        ]
    }

    /// The subject of an event of `tenant` in partition `p`.
    pub(crate) fn event_subject(&self, p: u32, tenant: TenantId, event_type: &[u8]) -> String {
        let mut s = format!("{}.ev.{p}.{}.", self.namespace, tenant.0);
        escape_token(event_type, &mut s);
        s
    }

    /// The subject of a change of `tenant`'s state in partition `p`.
    pub(crate) fn op_subject(&self, p: u32, tenant: TenantId) -> String {
        format!("{}.op.{p}.{}", self.namespace, tenant.0)
    }

    /// The subject of a change that is no one tenant's (a node leaving).
    pub(crate) fn node_subject(&self, p: u32) -> String {
        format!("{}.op.{p}.node", self.namespace)
    }

    /// The catalog bucket.
    pub(crate) fn bucket(&self) -> String {
        format!("{}_catalog", self.namespace)
    }
}

/// Appends `raw` as one subject token: bytes that could split or wildcard a subject
/// (`.`, `*`, `>`, whitespace, `%`, anything outside printable ASCII) become `%XX`.
/// Reversible, since `%` itself is escaped; event types (`[A-Za-z0-9._:-]`) only ever
/// escape their dots.
pub(crate) fn escape_token(raw: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if raw.is_empty() {
        out.push_str("%00");
        return;
    }
    for &b in raw {
        let plain = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':');
        if plain {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_become_one_token() {
        let names = Names::new("sluice");
        assert_eq!(
            names.event_subject(3, TenantId(7), b"order.created"),
            "sluice.ev.3.7.order%2Ecreated"
        );
        assert_eq!(
            names.event_subject(0, TenantId(1), b"a..b*>% x"),
            "sluice.ev.0.1.a%2E%2Eb%2A%3E%25%20x"
        );
        assert_eq!(
            names.event_subject(0, TenantId(1), b""),
            "sluice.ev.0.1.%00"
        );
        assert_eq!(names.stream(2), "SLUICE_EV_2");
        assert_eq!(names.bucket(), "sluice_catalog");
    }

    #[test]
    fn namespaces_are_checked() {
        assert!(Names::valid_namespace("sluice"));
        assert!(Names::valid_namespace("c12x3"));
        assert!(!Names::valid_namespace(""));
        assert!(!Names::valid_namespace("Sluice"));
        assert!(!Names::valid_namespace("a.b"));
        assert!(!Names::valid_namespace(&"a".repeat(33)));
    }
}
