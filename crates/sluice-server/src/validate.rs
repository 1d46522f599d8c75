//! The rules for names the API and the CLI accept: event types, tenant names, scopes.
//! One place, so the server and the offline commands cannot disagree.

use sluice_store::Scope;

use crate::problem::{FieldError, Problem};

/// What [`event_type`] accepts, for error messages.
pub const EVENT_TYPE_RULE: &str =
    "must be 1 to 256 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'";

/// The longest event type, in characters.
pub const EVENT_TYPE_CHARS_MAX: usize = 256;

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
