//! The operator console at `/ui/`: three files, embedded in the binary at compile time
//! (`src/console/`), so it needs no CDN, no network and no build step. The page itself
//! uses only the public API with the key or admin token it was given, and `/metrics`.
//!
//! The files are served with a content security policy that allows nothing but this
//! origin, so an event payload shown in the page can never load or run anything.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, StatusCode};
use sluice_store::Store;

use crate::app::{App, Cx};
use crate::problem::{Code, Problem};
use crate::reply::{self, Reply};

static INDEX: &str = include_str!("../console/index.html");
static SCRIPT: &str = include_str!("../console/console.js");
static STYLE: &str = include_str!("../console/console.css");

/// Only this origin, for everything; no inline script (the page has none).
const POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `GET /ui`: to `/ui/`, so relative paths and bookmarks have one spelling.
pub(crate) async fn root<S: Store>(_: &App<S>, _: &mut Cx<'_>) -> Result<Reply, Problem> {
    let mut reply = reply::empty(StatusCode::PERMANENT_REDIRECT);
    reply
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/ui/"));
    Ok(reply)
}

/// `GET /ui/`: the page.
pub(crate) async fn index<S: Store>(_: &App<S>, _: &mut Cx<'_>) -> Result<Reply, Problem> {
    Ok(file("text/html; charset=utf-8", INDEX))
}

/// `GET /ui/{file}`: its script and style sheet.
pub(crate) async fn asset<S: Store>(_: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    match cx.param("file") {
        "console.js" => Ok(file("text/javascript; charset=utf-8", SCRIPT)),
        "console.css" => Ok(file("text/css; charset=utf-8", STYLE)),
        other => Err(Problem::new(
            Code::NotFound,
            format!("the console has no file {other:?}; open /ui/"),
        )),
    }
}

fn file(content_type: &'static str, body: &'static str) -> Reply {
    let mut reply = reply::with_type(
        StatusCode::OK,
        content_type,
        Bytes::from_static(body.as_bytes()),
    );
    let headers = reply.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // The files change with the binary: revalidate rather than cache stale ones.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    reply
}
