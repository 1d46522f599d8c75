//! Who may call a route: the access a route declares, and the checks that establish
//! the caller (an API key with its scopes, or the admin token).

use http::header::HeaderValue;
use sluice_store::Scope;
use subtle::ConstantTimeEq;

use crate::auth::{KeyCache, Principal};
use crate::known::KnownHeaders;
use crate::problem::{Code, Problem};

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, readiness, metrics, the OpenAPI document, the console's files.
    Open,
    /// An API key with at least one of these scopes. The key's tenant is rate-limited.
    Key(&'static [Scope]),
    /// The admin token.
    Admin,
}

impl Access {
    /// A short description for the OpenAPI document and error messages.
    pub fn describe(self) -> String {
        match self {
            Access::Open => "none".into(),
            Access::Key(scopes) => scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
            Access::Admin => "admin token".into(),
        }
    }
}

/// The token part of `Authorization: Bearer <token>`. The scheme is case-insensitive
/// (RFC 9110, 11.1), and one or more spaces may follow it.
fn bearer<'a>(head: &KnownHeaders<'a>) -> Option<&'a [u8]> {
    let v = head.authorization?.as_bytes();
    let (scheme, rest) = v.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"Bearer") || !rest.starts_with(b" ") {
        return None;
    }
    let token = rest.trim_ascii_start();
    (!token.is_empty()).then_some(token)
}

/// The API key a request presents, as `Authorization: Bearer` or `X-API-Key`.
pub fn presented_key<'a>(head: &KnownHeaders<'a>) -> Option<&'a [u8]> {
    bearer(head).or_else(|| head.x_api_key.map(HeaderValue::as_bytes))
}

/// The principal of the request's API key.
pub fn authenticate(head: &KnownHeaders<'_>, keys: &KeyCache) -> Result<Principal, Problem> {
    let presented = presented_key(head).ok_or_else(|| {
        Problem::unauthorized(
            "send your API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
        )
    })?;
    keys.authenticate(presented)
        .ok_or_else(|| Problem::unauthorized("this API key is unknown or revoked"))
}

/// Checks the admin token (compared in constant time).
pub fn admin(head: &KnownHeaders<'_>, token: Option<&str>) -> Result<(), Problem> {
    let Some(token) = token else {
        return Err(Problem::unauthorized(
            "the admin API is disabled; start the server with --admin-token",
        ));
    };
    let ok = bearer(head).is_some_and(|p| bool::from(p.ct_eq(token.as_bytes())));
    if ok {
        Ok(())
    } else {
        Err(Problem::unauthorized(
            "send the admin token as `Authorization: Bearer <token>`",
        ))
    }
}

/// Checks that the key has one of `scopes`.
pub fn require(who: Principal, scopes: &[Scope]) -> Result<(), Problem> {
    if scopes.iter().any(|s| who.scopes.has(*s)) {
        return Ok(());
    }
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let message = match names.as_slice() {
        [one] => format!("this API key lacks the `{one}` scope"),
        many => format!("this route needs one of the scopes {}", many.join(", ")),
    };
    Err(Problem::new(Code::Forbidden, message))
}
