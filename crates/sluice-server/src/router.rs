//! Routing, derived from the route table ([`crate::routes`]).
//!
//! Every route is one declaration there: method, path pattern, access, handler, metrics
//! label and OpenAPI operation. From the table alone this module builds the path
//! matcher (matchit, a radix tree: one lookup per request, whatever the number of
//! routes), the `404` for a path no route has, and the `405` with its `Allow` header for
//! a path whose routes take other methods.

use http::Method;

use crate::access::Access;
use crate::problem::{Code, Problem};
use crate::routes::{RouteId, ROUTES};

/// One route, as the table declares it.
#[derive(Debug)]
pub struct RouteSpec {
    /// Which route: also the index of its metrics.
    pub id: RouteId,
    /// Its method.
    pub method: Method,
    /// Its path pattern, in matchit's syntax (`/v1/events/{id}`), which is also the
    /// OpenAPI document's.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Its label in `/metrics`: `METHOD path`.
    pub label: &'static str,
    /// Adds its operation to the OpenAPI document: the method and path its
    /// `#[utoipa::path]` declares, and the operation.
    pub openapi: fn() -> (
        Vec<utoipa::openapi::path::HttpMethod>,
        String,
        utoipa::openapi::path::Operation,
    ),
}

/// The routes of one path pattern.
struct PathRoutes {
    routes: Vec<(Method, RouteId)>,
    /// `Allow` for a 405 on this path. Built once per path at start-up and kept for the
    /// process's life (leaked: one short string per path pattern, about twenty), so a
    /// 405 carries it without a copy.
    allow: &'static str,
}

/// The matcher built from the table.
pub struct Router {
    paths: matchit::Router<usize>,
    by_path: Vec<PathRoutes>,
}

/// A request matched to a route.
pub struct Matched<'r> {
    /// The route.
    pub route: &'static RouteSpec,
    /// The values of the path's `{name}` segments.
    pub params: matchit::Params<'r, 'r>,
}

impl Router {
    /// Builds the matcher from [`ROUTES`].
    ///
    /// Panics on a table that cannot be routed (a malformed or conflicting pattern):
    /// the table is a constant, so this can only fail in development, and the tests
    /// build the router.
    pub fn new() -> Router {
        let mut paths = matchit::Router::new();
        let mut by_path: Vec<PathRoutes> = Vec::new();
        let mut index_of: Vec<(&'static str, usize)> = Vec::new();
        for spec in ROUTES {
            let i = match index_of.iter().find(|(p, _)| *p == spec.path) {
                Some((_, i)) => *i,
                None => {
                    let i = by_path.len();
                    if let Err(e) = paths.insert(spec.path, i) {
                        panic!("route table: {} cannot be routed: {e}", spec.path);
                    }
                    index_of.push((spec.path, i));
                    by_path.push(PathRoutes {
                        routes: Vec::new(),
                        allow: "",
                    });
                    i
                }
            };
            assert!(
                !by_path[i].routes.iter().any(|(m, _)| *m == spec.method),
                "route table: {} declared twice",
                spec.label
            );
            by_path[i].routes.push((spec.method.clone(), spec.id));
        }
        for p in &mut by_path {
            let mut allow: Vec<&str> = p.routes.iter().map(|(m, _)| m.as_str()).collect();
            if p.routes.iter().any(|(m, _)| m == Method::GET) {
                allow.push("HEAD");
            }
            p.allow = Box::leak(allow.join(", ").into_boxed_str());
        }
        Router { paths, by_path }
    }

    /// The route for a method and path, or the problem to answer: `404` when no route
    /// has the path, `405` with `Allow` when none takes the method.
    pub fn route<'r>(&'r self, method: &Method, path: &'r str) -> Result<Matched<'r>, Problem> {
        let Ok(found) = self.paths.at(path) else {
            let hint = if path.starts_with("/v1/") || path == "/v1" {
                "see /openapi.json for the routes"
            } else {
                "the API lives under /v1 (see the README's API summary)"
            };
            return Err(Problem::new(
                Code::NotFound,
                format!("no route for {path}; {hint}"),
            ));
        };
        let routes = &self.by_path[*found.value];
        // HEAD is GET without the body (hyper sends no body for HEAD; the headers,
        // Content-Length included, are GET's own).
        let wanted = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        match routes.routes.iter().find(|(m, _)| m == wanted) {
            Some((_, id)) => Ok(Matched {
                route: &ROUTES[*id as usize],
                params: found.params,
            }),
            None => Err(Problem {
                allow: Some(routes.allow),
                ..Problem::new(
                    Code::MethodNotAllowed,
                    format!("{path} accepts {}, not {method}", routes.allow),
                )
            }),
        }
    }
}

impl Router {
    /// The methods a path takes (the `Allow` header), if any route has it.
    pub fn allow(&self, path: &str) -> Option<&'static str> {
        let found = self.paths.at(path).ok()?;
        Some(self.by_path[*found.value].allow)
    }
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

/// Adds a route's operation to the OpenAPI document, from its utoipa path type.
pub fn operation<P: utoipa::Path>() -> (
    Vec<utoipa::openapi::path::HttpMethod>,
    String,
    utoipa::openapi::path::Operation,
) {
    (P::methods(), P::path(), P::operation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_reachable_at_its_own_pattern_and_ids_index_the_table() {
        let router = Router::new();
        for (i, spec) in ROUTES.iter().enumerate() {
            assert_eq!(spec.id as usize, i, "{} is out of place", spec.label);
            let concrete = spec
                .path
                .replace("{id}", "x")
                .replace("{name}", "x")
                .replace("{key_id}", "x");
            let matched = router
                .route(&spec.method, &concrete)
                .unwrap_or_else(|p| panic!("{} not routed: {}", spec.label, p.detail));
            assert_eq!(matched.route.id, spec.id);
        }
    }
}
