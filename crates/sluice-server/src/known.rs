//! The request headers the server reads on its common path, found in one pass over
//! the request's map. (Rarer ones, such as the live tail's `Last-Event-ID` and a CORS
//! preflight's `Access-Control-Request-Method`, are read from the request itself where
//! they are needed.)
//!
//! Each `HeaderMap::get` hashes the name and probes the map: ~130 instructions, and a
//! single-event request asked for seven (request id, credentials, idempotency key,
//! content type, encoding and length, CORS origin), callgrind said (issue 17). One walk
//! over the few headers a request carries finds them all. As with `get`, the first
//! value of a repeated header is the one that counts.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_TYPE, ORIGIN,
};

/// `X-API-Key`: the key, for clients that cannot send `Authorization`.
pub static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// `X-Request-Id`: the client's id for the request, echoed back.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `Idempotency-Key`: the IETF draft's header for a retried create.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The headers of one request that the server reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct KnownHeaders<'a> {
    /// `Authorization`.
    pub authorization: Option<&'a HeaderValue>,
    /// `X-API-Key`.
    pub x_api_key: Option<&'a HeaderValue>,
    /// `X-Request-Id`.
    pub x_request_id: Option<&'a HeaderValue>,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<&'a HeaderValue>,
    /// `Content-Type`.
    pub content_type: Option<&'a HeaderValue>,
    /// `Content-Encoding`.
    pub content_encoding: Option<&'a HeaderValue>,
    /// `Content-Length`.
    pub content_length: Option<&'a HeaderValue>,
    /// `Origin`.
    pub origin: Option<&'a HeaderValue>,
}

impl<'a> KnownHeaders<'a> {
    /// Finds the known headers among a request's.
    pub fn scan(headers: &'a HeaderMap) -> KnownHeaders<'a> {
        let mut k = KnownHeaders::default();
        for (name, value) in headers {
            // Standard names compare as one enum value; the custom ones by length
            // first, then bytes.
            let slot = if name == CONTENT_TYPE {
                &mut k.content_type
            } else if name == CONTENT_LENGTH {
                &mut k.content_length
            } else if name == AUTHORIZATION {
                &mut k.authorization
            } else if name == CONTENT_ENCODING {
                &mut k.content_encoding
            } else if name == ORIGIN {
                &mut k.origin
            } else if name == X_REQUEST_ID {
                &mut k.x_request_id
            } else if name == IDEMPOTENCY_KEY {
                &mut k.idempotency_key
            } else if name == X_API_KEY {
                &mut k.x_api_key
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_get_finds_first_values_included() {
        let mut map = HeaderMap::new();
        map.append("host", HeaderValue::from_static("x"));
        map.append("Authorization", HeaderValue::from_static("Bearer a"));
        map.append("authorization", HeaderValue::from_static("Bearer b"));
        map.append("x-request-id", HeaderValue::from_static("r1"));
        map.append("idempotency-key", HeaderValue::from_static("k"));
        map.append("content-type", HeaderValue::from_static("application/json"));
        map.append("x-api-key", HeaderValue::from_static("sk"));
        map.append("x-other", HeaderValue::from_static("o"));
        let k = KnownHeaders::scan(&map);
        assert_eq!(k.authorization, map.get(AUTHORIZATION));
        assert_eq!(
            k.authorization.map(|v| v.as_bytes()),
            Some(&b"Bearer a"[..])
        );
        assert_eq!(k.x_request_id, map.get(&X_REQUEST_ID));
        assert_eq!(k.idempotency_key, map.get(&IDEMPOTENCY_KEY));
        assert_eq!(k.content_type, map.get(CONTENT_TYPE));
        assert_eq!(k.x_api_key, map.get(&X_API_KEY));
        assert_eq!(k.content_length, None);
        assert_eq!(k.content_encoding, None);
        assert_eq!(k.origin, None);
    }
}
