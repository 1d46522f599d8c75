//! The route table: every route of the API, one declaration each.
//!
//! A declaration names the route, its method and path pattern, who may call it, its
//! handler and its OpenAPI operation (the `#[utoipa::path]` in [`crate::openapi`]).
//! Routing, the `404` and `405` answers, scope checks, the metrics labels and the
//! OpenAPI paths are all derived from this table; adding a route touches this table,
//! its handler module and its OpenAPI operation, and nothing else.
//!
//! The handlers are dispatched by one generated `match`, not through boxed function
//! pointers: a boxed future per request would be an allocation on the ingest path.
//! Single-event ingest runs inline; the other routes' futures are boxed, so that the
//! ingest path's future is not the size of the largest handler's (see `dispatch`).

use sluice_store::Scope::{Consume, Ingest, Manage};
use sluice_store::Store;

use crate::access::Access::{self, Admin, Key, Open};
use crate::app::{App, Cx};
use crate::handlers::{
    admin, console, consumers, events, inbox, ingest, ops, subscriptions as subs, tail,
};
use crate::openapi::paths as doc;
use crate::problem::Problem;
use crate::reply::Reply;
use crate::router::{operation, RouteSpec};

/// Declares the table: the `RouteId` enum, `ROUTES`, and `dispatch`.
macro_rules! route_table {
    ($( $id:ident: $method:ident $path:literal, $access:expr, $handler:path, $doc:ident $(, $inline:ident)?; )*) => {
        /// A route of the API; its discriminant is its index in [`ROUTES`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum RouteId { $($id,)* }

        /// Every route, in declaration order.
        pub static ROUTES: &[RouteSpec] = &[$(
            RouteSpec {
                id: RouteId::$id,
                method: http::Method::$method,
                path: $path,
                access: $access,
                label: concat!(stringify!($method), " ", $path),
                openapi: operation::<doc::$doc>,
            },
        )*];

        /// Runs the route's handler. Routes marked `inline` in the table (single-event
        /// ingest) run inline; every other route runs boxed. A request's future is as
        /// large as the largest handler's state it might hold, and hyper moves it into
        /// place for every request: the union of all handlers made it 3,744 bytes,
        /// copied on the ingest path for nothing. Boxed, the other routes cost one
        /// allocation each (their own work dwarfs it), and the ingest path's future
        /// holds only its own state.
        pub(crate) async fn dispatch<S: Store>(
            id: RouteId,
            app: &App<S>,
            cx: &mut Cx<'_>,
        ) -> Result<Reply, Problem> {
            match id {
                $($( RouteId::$id if route_table!(@inline $inline) => $handler(app, cx).await, )?)*
                _ => dispatch_boxed(id, app, cx).await,
            }
        }

        fn dispatch_boxed<'a, 'r: 'a, S: Store>(
            id: RouteId,
            app: &'a App<S>,
            cx: &'a mut Cx<'r>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, Problem>> + Send + 'a>> {
            Box::pin(async move {
                match id {
                    $(RouteId::$id => $handler(app, cx).await,)*
                }
            })
        }
    };
    (@inline inline) => { true };
}

const INGEST: Access = Key(&[Ingest]);
const CONSUME: Access = Key(&[Consume]);
const READ: Access = Key(&[Consume, Manage]);
const MANAGE: Access = Key(&[Manage]);

route_table! {
    Ingest: POST "/v1/events", INGEST, ingest::single, __path_ingest, inline;
    IngestBatch: POST "/v1/events/batch", INGEST, ingest::batch, __path_ingest_batch;
    Inbox: GET "/v1/inbox", CONSUME, inbox::list, __path_inbox;
    InboxAck: POST "/v1/inbox/ack", CONSUME, inbox::ack_many, __path_inbox_ack;
    InboxDeadLetters: GET "/v1/inbox/dead-letters", CONSUME, inbox::dead_letters, __path_inbox_dead_letters;
    InboxRequeue: POST "/v1/inbox/dead-letters/requeue", CONSUME, inbox::requeue, __path_inbox_requeue;
    ConsumerList: GET "/v1/consumers", READ, consumers::list, __path_list_consumers;
    ConsumerCreate: POST "/v1/consumers", MANAGE, consumers::create, __path_create_consumer;
    ConsumerGet: GET "/v1/consumers/{name}", READ, consumers::get, __path_get_consumer;
    ConsumerPatch: PATCH "/v1/consumers/{name}", MANAGE, consumers::patch, __path_patch_consumer;
    ConsumerDelete: DELETE "/v1/consumers/{name}", MANAGE, consumers::delete, __path_delete_consumer;
    History: GET "/v1/events", READ, events::history, __path_history;
    Stream: GET "/v1/stream", CONSUME, tail::stream, __path_stream;
    EventGet: GET "/v1/events/{id}", READ, events::get, __path_get_event;
    EventAck: POST "/v1/events/{id}/ack", CONSUME, inbox::ack_one, __path_ack_event;
    EventNack: POST "/v1/events/{id}/nack", CONSUME, inbox::nack, __path_nack_event;
    EventLease: POST "/v1/events/{id}/lease", CONSUME, inbox::extend, __path_extend_lease;
    EventDelete: DELETE "/v1/events/{id}", CONSUME, events::delete, __path_delete_event;
    SubCreate: POST "/v1/subscriptions", MANAGE, subs::create, __path_create_subscription;
    SubList: GET "/v1/subscriptions", MANAGE, subs::list, __path_list_subscriptions;
    SubGet: GET "/v1/subscriptions/{id}", MANAGE, subs::get, __path_get_subscription;
    SubPatch: PATCH "/v1/subscriptions/{id}", MANAGE, subs::patch, __path_patch_subscription;
    SubDelete: DELETE "/v1/subscriptions/{id}", MANAGE, subs::delete, __path_delete_subscription;
    SubRotate: POST "/v1/subscriptions/{id}/rotate-secret", MANAGE, subs::rotate_secret, __path_rotate_secret;
    SubAttempts: GET "/v1/subscriptions/{id}/attempts", MANAGE, subs::attempts, __path_list_attempts;
    SubDeadLetters: GET "/v1/subscriptions/{id}/dead-letters", MANAGE, subs::dead_letters, __path_list_dead_letters;
    SubReplay: POST "/v1/subscriptions/{id}/replay", MANAGE, subs::replay, __path_replay;
    SubTest: POST "/v1/subscriptions/{id}/test", MANAGE, subs::test, __path_test_subscription;
    Health: GET "/v1/health", Open, ops::health, __path_health;
    Ready: GET "/v1/ready", Open, ops::ready, __path_ready;
    Metrics: GET "/metrics", Open, ops::metrics, __path_metrics;
    OpenApi: GET "/openapi.json", Open, ops::openapi, __path_openapi;
    ConsoleRoot: GET "/ui", Open, console::root, __path_console_root;
    Console: GET "/ui/", Open, console::index, __path_console;
    ConsoleAsset: GET "/ui/{file}", Open, console::asset, __path_console_asset;
    AdminListTenants: GET "/v1/admin/tenants", Admin, admin::list_tenants, __path_list_tenants;
    AdminCreateTenant: POST "/v1/admin/tenants", Admin, admin::create_tenant, __path_create_tenant;
    AdminPatchTenant: PATCH "/v1/admin/tenants/{name}", Admin, admin::patch_tenant, __path_patch_tenant;
    AdminListKeys: GET "/v1/admin/tenants/{name}/keys", Admin, admin::list_keys, __path_list_keys;
    AdminCreateKey: POST "/v1/admin/tenants/{name}/keys", Admin, admin::create_key, __path_create_key;
    AdminRevokeKey: DELETE "/v1/admin/keys/{key_id}", Admin, admin::revoke_key, __path_revoke_key;
}
