//! The wire formats Sluice writes by hand, shared by the HTTP layer (answers) and the
//! dispatcher (webhook bodies): [`json::JsonWriter`], which embeds stored payloads
//! verbatim into one buffer, and RFC 3339 timestamps with milliseconds.
//!
//! ```
//! use sluice_wire::json::JsonWriter;
//! let mut w = JsonWriter::with_capacity(64);
//! w.begin_object();
//! w.field_str("type", "order.created");
//! w.key("data");
//! w.raw(br#"{"id":42}"#);
//! w.end_object();
//! assert_eq!(&w.finish()[..], br#"{"type":"order.created","data":{"id":42}}"#);
//! ```

#![warn(missing_docs)]

pub mod json;
