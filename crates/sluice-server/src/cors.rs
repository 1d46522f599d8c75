//! CORS, for browser clients on other origins: configurable allowed origins
//! (`cors_origins`), preflights answered before authentication (a browser sends them
//! without credentials), and the response headers a script may read exposed.
//!
//! Off by default: with no allowed origin, no CORS header is ever sent and an
//! `OPTIONS` is routed like any method (so `405`).

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, VARY,
};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::reply::{self, Reply};

const ALLOW_HEADERS: HeaderValue = HeaderValue::from_static(
    "authorization, content-type, idempotency-key, x-api-key, x-request-id, last-event-id",
);
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static(
    "x-request-id, ratelimit-limit, ratelimit-remaining, ratelimit-reset, ratelimit-policy, retry-after, idempotent-replayed",
);
/// Browsers cache a preflight this long (10 minutes).
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// None (the default): no CORS headers.
    #[default]
    None,
    /// Any origin (`*`). Credentials are headers set by the script, not cookies, so
    /// `*` does not widen what a page can do with a key it was given.
    Any,
    /// These exact origins (`https://app.example.com`).
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parses `cors_origins`: empty for none, `*` for any, or a comma-separated list.
    pub fn parse(text: &str) -> Result<CorsOrigins, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(CorsOrigins::None);
        }
        if text == "*" {
            return Ok(CorsOrigins::Any);
        }
        let mut list = Vec::new();
        for o in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let ok = (o.starts_with("http://") || o.starts_with("https://"))
                && !o.ends_with('/')
                && HeaderValue::from_str(o).is_ok();
            if !ok {
                return Err(format!("cors_origins: {o:?} is not an origin such as https://app.example.com (scheme and host, no path, no trailing slash)"));
            }
            list.push(o.to_owned());
        }
        Ok(CorsOrigins::List(list))
    }

    /// The `Access-Control-Allow-Origin` value for this request's `Origin`, if allowed.
    fn allow(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match self {
            CorsOrigins::None => None,
            CorsOrigins::Any => origin.map(|_| HeaderValue::from_static("*")),
            CorsOrigins::List(list) => {
                let origin = origin?;
                list.iter()
                    .any(|o| o.as_bytes() == origin.as_bytes())
                    .then(|| origin.clone())
            }
        }
    }

    /// A preflight's answer (`204` with the allowed methods and headers), or `None`
    /// when this is not a preflight of an allowed origin. `origin` is the request's
    /// `Origin` (as [`crate::known::KnownHeaders`] found it). `allow` gives the path's
    /// methods; it is asked only of a preflight, so other requests match the path once.
    pub fn preflight(
        &self,
        head: &Parts,
        origin: Option<&HeaderValue>,
        allow: impl FnOnce() -> Option<&'static str>,
    ) -> Option<Reply> {
        if head.method != Method::OPTIONS
            || !head.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let origin = self.allow(origin)?;
        let mut r = reply::empty(StatusCode::NO_CONTENT);
        let h = r.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(allow().unwrap_or("GET, POST, PATCH, DELETE")),
        );
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        h.insert(ACCESS_CONTROL_MAX_AGE, MAX_AGE);
        h.insert(VARY, HeaderValue::from_static("Origin"));
        Some(r)
    }

    /// Adds the CORS headers to an answer for an allowed origin.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if let Some(origin) = self.allow(origin) {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_origins_and_refuses_paths() {
        assert_eq!(CorsOrigins::parse(""), Ok(CorsOrigins::None));
        assert_eq!(CorsOrigins::parse("*"), Ok(CorsOrigins::Any));
        assert_eq!(
            CorsOrigins::parse("https://a.example, http://localhost:3000"),
            Ok(CorsOrigins::List(vec![
                "https://a.example".into(),
                "http://localhost:3000".into()
            ]))
        );
        for bad in ["a.example", "https://a.example/", "ftp://x"] {
            assert!(CorsOrigins::parse(bad).is_err(), "{bad}");
        }
    }
}
