//! The rules for names the API and the CLI accept: event types, tenant names, scopes.
//! One place, so the server and the offline commands cannot disagree.

use sluice_store::Scope;

use crate::problem::{FieldError, Problem};

/// What [`event_type`] accepts, for error messages.
pub const EVENT_TYPE_RULE: &str =
    "must be 1 to 256 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'";

/// The longest event type, in characters.
pub const EVENT_TYPE_CHARS_MAX: usize = 256;

/// Entries an `event_types` filter (a subscription's, a consumer's) may hold.
pub const EVENT_TYPES_MAX: usize = 100;

/// Checks event types: exact names, or prefixes ending in `.*`.
pub fn event_type_patterns(types: Vec<String>, errors: &mut Vec<FieldError>) -> Vec<String> {
    if types.len() > EVENT_TYPES_MAX {
        errors.push(FieldError::new(
            "event_types",
            "must hold at most 100 entries",
        ));
        return Vec::new();
    }
    for (i, t) in types.iter().enumerate() {
        let ok = match t.strip_suffix(".*") {
            Some(prefix) => event_type(prefix),
            None => event_type(t),
        };
        if !ok {
            errors.push(FieldError::new(
                format!("event_types[{i}]"),
                "must be an event type (1 to 256 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'), or a prefix ending in .* such as order.*",
            ));
        }
    }
    let mut types = types;
    types.sort();
    types.dedup();
    types
}

/// Event types: 1–256 characters of `[A-Za-z0-9._:-]`.
pub fn event_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= EVENT_TYPE_CHARS_MAX
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Tenant names: 1–64 characters of `[a-z0-9_-]`, so they are safe in URLs and labels.
pub fn tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Parses scope names as the API and CLI accept them.
pub fn scopes(names: &[String]) -> Result<Vec<Scope>, Problem> {
    let mut scopes = Vec::new();
    for name in names {
        match Scope::parse(name) {
            Some(s) if !scopes.contains(&s) => scopes.push(s),
            Some(_) => {}
            None => {
                return Err(Problem::validation(vec![FieldError::new(
                    "scopes",
                    format!("unknown scope {name:?}; use ingest, consume or manage"),
                )]))
            }
        }
    }
    if scopes.is_empty() {
        return Err(Problem::validation(vec![FieldError::new(
            "scopes",
            "must name at least one scope",
        )]));
    }
    Ok(scopes)
}
