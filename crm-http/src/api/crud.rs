//! The operations most resources share, written once: each macro declares one
//! operation (its own API struct, so any resource can pick the ones it has) that
//! parses, calls one core service method with the caller's principal, and presents
//! the result. Nothing here decides who may do what.

/// The record type a service reads and writes (`entity_of!(contacts)` is `Contact`),
/// named in the spec as the `data` of the operations' responses.
macro_rules! entity_of {
    (users) => {
        crm_core::access::users::User
    };
    (companies) => {
        crm_core::customers::companies::Company
    };
    (contacts) => {
        crm_core::customers::contacts::Contact
    };
    (leads) => {
        crm_core::customers::leads::Lead
    };
    (deals) => {
        crm_core::customers::deals::Deal
    };
    (quotes) => {
        crm_core::sales::quotes::Quote
    };
    (invoices) => {
        crm_core::sales::invoices::Invoice
    };
    (payments) => {
        crm_core::sales::payments::Payment
    };
    (delivery_notes) => {
        crm_core::sales::delivery_notes::DeliveryNote
    };
    (projects) => {
        crm_core::work::projects::Project
    };
    (milestones) => {
        crm_core::work::milestones::Milestone
    };
    (tasks) => {
        crm_core::work::tasks::Task
    };
    (products) => {
        crm_core::sales::products::Product
    };
    (product_categories) => {
        crm_core::sales::products::ProductCategory
    };
    (audit) => {
        crm_core::access::audit::AuditLog
    };
    (api_keys) => {
        crm_core::access::api_keys::ApiKey
    };
}

/// Declares `$api` as the operations of `$operation` whose success responses carry
/// `$data` (`One` record or a `Page` of them) as their `data` in the spec.
macro_rules! typed_api {
    ($api:ident, $operation:ident, $data:ty, $shape:ident $(, filters: [$($name:ident),*])?) => {
        impl poem_openapi::OpenApi for $api {
            fn meta() -> Vec<poem_openapi::registry::MetaApi> {
                let apis = $operation::meta();
                $(let apis = $crate::api::with_filters(apis, &[$(stringify!($name)),*]);)?
                let envelope = $crate::api::schema::envelope_name::<$data>($crate::api::schema::Data::$shape);
                $crate::api::schema::with_data(apis, &envelope)
            }
            fn register(registry: &mut poem_openapi::registry::Registry) {
                $operation::register(registry);
                $crate::api::schema::register_envelope::<$data>(registry, $crate::api::schema::Data::$shape);
            }
            fn add_routes(
                self,
                route_table: &mut std::collections::HashMap<
                    String,
                    std::collections::HashMap<poem::http::Method, poem::endpoint::BoxEndpoint<'static>>,
                >,
            ) {
                $operation.add_routes(route_table);
            }
        }
    };
}

/// `GET <path>`: a filtered, sorted, paged listing through `crm.<service>().list`. The
/// filters are read from the query string into the core's filter type, and documented
/// in the spec as the query parameters `[filters…]`.
macro_rules! list_op {
    ($api:ident, $path:tt, $tag:tt, $doc:tt, $service:ident, $filter:ty, [$($name:ident),* $(,)?]) => {
        pub(crate) struct $api;

        const _: () = {
            struct Operation;

            #[poem_openapi::OpenApi(tag = $tag)]
            impl Operation {
                #[doc = $doc]
                #[oai(path = $path, method = "get")]
                #[allow(clippy::too_many_arguments)]
                async fn list(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    req: &poem::Request,
                    /// Rows per page (1 to 500, default 50).
                    limit: poem_openapi::param::Query<Option<u32>>,
                    /// The `next_cursor` of the previous page.
                    cursor: poem_openapi::param::Query<Option<String>>,
                    /// A sortable field; `-field` sorts descending.
                    sort: poem_openapi::param::Query<Option<String>>,
                    /// Case-insensitive text search.
                    search: poem_openapi::param::Query<Option<String>>,
                    /// Also count every matching row.
                    total: poem_openapi::param::Query<Option<bool>>,
                ) -> Result<$crate::output::Fetched, $crate::error::ApiError> {
                    let caller = ctx.caller(&auth).await?;
                    let filter: $filter = $crate::input::filter_from_query(req)?;
                    let page = $crate::input::page_request(limit.0, cursor.0, sort.0, search.0, total.0);
                    let found = ctx.crm.$service().list(&caller.principal, &filter, &page).await?;
                    $crate::output::page(found, &page)
                }
            }

            typed_api!($api, Operation, entity_of!($service), Page, filters: [$($name),*]);
        };
    };
}

/// `GET <path>/:id`.
macro_rules! get_op {
    ($api:ident, $path:tt, $tag:tt, $service:ident) => {
        pub(crate) struct $api;

        const _: () = {
            struct Operation;

            #[poem_openapi::OpenApi(tag = $tag)]
            impl Operation {
                /// One record; another tenant's or an unreachable id is 404.
                #[oai(path = $path, method = "get")]
                async fn get(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    id: poem_openapi::param::Path<uuid::Uuid>,
                ) -> Result<$crate::output::Fetched, $crate::error::ApiError> {
                    let caller = ctx.caller(&auth).await?;
                    let found = ctx.crm.$service().get(&caller.principal, id.0.into()).await?;
                    $crate::output::one(&found)
                }
            }

            typed_api!($api, Operation, entity_of!($service), One);
        };
    };
}

/// `POST <path>`: creates through `crm.<service>().<method>(principal, input)`.
macro_rules! create_op {
    ($api:ident, $path:tt, $tag:tt, $service:ident, $method:ident, $input:ty) => {
        pub(crate) struct $api;

        const _: () = {
            struct Operation;

            #[poem_openapi::OpenApi(tag = $tag)]
            impl Operation {
                #[doc = concat!("Creates one; the body is the core's `", stringify!($input), "` (money as decimal strings).")]
                #[oai(path = $path, method = "post")]
                async fn create(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    body: poem_openapi::payload::Json<$crate::api::schema::Body<$input>>,
                ) -> Result<$crate::output::Created, $crate::error::ApiError> {
                    let caller = ctx.caller(&auth).await?;
                    let input: $input = body.0.decode()?;
                    let created = ctx.crm.$service().$method(&caller.principal, input).await?;
                    $crate::output::created(&created)
                }
            }

            typed_api!($api, Operation, entity_of!($service), One);
        };
    };
}

/// `PATCH <path>/:id`: changes only the fields sent; the version comes from `If-Match`
/// or the body's `version`.
macro_rules! update_op {
    ($api:ident, $path:tt, $tag:tt, $service:ident, $patch:ty) => {
        pub(crate) struct $api;

        const _: () = {
            struct Operation;

            #[poem_openapi::OpenApi(tag = $tag)]
            impl Operation {
                #[doc = concat!("Changes the fields sent (the core's `", stringify!($patch), "`); a stale version is 409.")]
                #[oai(path = $path, method = "patch")]
                async fn update(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    id: poem_openapi::param::Path<uuid::Uuid>,
                    /// The `ETag` of the version read.
                    #[oai(name = "If-Match")]
                    if_match: poem_openapi::param::Header<Option<String>>,
                    body: poem_openapi::payload::Json<$crate::api::schema::Body<$patch>>,
                ) -> Result<$crate::output::Fetched, $crate::error::ApiError> {
                    let caller = ctx.caller(&auth).await?;
                    let patch: $patch = body.0.decode_patch(if_match.0.as_deref())?;
                    let updated = ctx.crm.$service().update(&caller.principal, id.0.into(), patch).await?;
                    $crate::output::one(&updated)
                }
            }

            typed_api!($api, Operation, entity_of!($service), One);
        };
    };
}

/// `DELETE <path>/:id`, at the `If-Match` version when one is sent.
macro_rules! delete_op {
    ($api:ident, $path:tt, $tag:tt, $service:ident) => {
        pub(crate) struct $api;

        #[poem_openapi::OpenApi(tag = $tag)]
        impl $api {
            /// Deletes one; refused (409) while other records still point at it.
            #[oai(path = $path, method = "delete")]
            async fn delete(
                &self,
                ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                auth: $crate::auth::Auth,
                id: poem_openapi::param::Path<uuid::Uuid>,
                /// The `ETag` of the version read.
                #[oai(name = "If-Match")]
                if_match: poem_openapi::param::Header<Option<String>>,
            ) -> Result<$crate::output::Fetched, $crate::error::ApiError> {
                let caller = ctx.caller(&auth).await?;
                let version = $crate::input::version_from_if_match(if_match.0.as_deref())?;
                ctx.crm.$service().delete(&caller.principal, id.0.into(), version).await?;
                Ok($crate::output::data(serde_json::json!({ "id": id.0, "deleted": true })))
            }
        }
    };
}

/// `POST <path>/:id/<action>`: a state change with no input but the version.
macro_rules! action_op {
    ($api:ident, $path:tt, $tag:tt, $doc:tt, $service:ident, $method:ident) => {
        pub(crate) struct $api;

        const _: () = {
            struct Operation;

            #[poem_openapi::OpenApi(tag = $tag)]
            impl Operation {
                #[doc = $doc]
                #[oai(path = $path, method = "post")]
                async fn action(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    id: poem_openapi::param::Path<uuid::Uuid>,
                    /// The `ETag` of the version read.
                    #[oai(name = "If-Match")]
                    if_match: poem_openapi::param::Header<Option<String>>,
                ) -> Result<$crate::output::Fetched, $crate::error::ApiError> {
                    let caller = ctx.caller(&auth).await?;
                    let version = $crate::input::version_from_if_match(if_match.0.as_deref())?;
                    let changed = ctx.crm.$service().$method(&caller.principal, id.0.into(), version).await?;
                    $crate::output::one(&changed)
                }
            }

            typed_api!($api, Operation, entity_of!($service), One);
        };
    };
}

/// `POST <path>/:id/<action>` with one body field (`{"status": "won"}`): calls
/// `crm.<service>().<method>(principal, id, value, version)`.
macro_rules! set_op {
    ($api:ident, $path:tt, $tag:tt, $doc:tt, $service:ident, $method:ident, $field:ident: $ty:ty) => {
        pub(crate) struct $api;

        const _: () = {
            #[doc = $doc]
            #[derive(serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            struct Fields {
                /// The new value.
                $field: $ty,
                /// The version read (or send `If-Match`).
                version: Option<u64>,
            }

            /// The body's schema, named after the operation.
            struct Input;

            impl schemars::JsonSchema for Input {
                fn schema_name() -> std::borrow::Cow<'static, str> {
                    concat!(stringify!($api), "Body").into()
                }
                fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                    <Fields as schemars::JsonSchema>::json_schema(generator)
                }
            }

            struct Operation;

            #[poem_openapi::OpenApi(tag = $tag)]
            impl Operation {
                #[doc = $doc]
                #[oai(path = $path, method = "post")]
                async fn set(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    id: poem_openapi::param::Path<uuid::Uuid>,
                    /// The `ETag` of the version read.
                    #[oai(name = "If-Match")]
                    if_match: poem_openapi::param::Header<Option<String>>,
                    body: poem_openapi::payload::Json<$crate::api::schema::Body<Input>>,
                ) -> Result<$crate::output::Fetched, $crate::error::ApiError> {
                    let caller = ctx.caller(&auth).await?;
                    let input: Fields = $crate::input::decode_patch(body.0.into_json(), if_match.0.as_deref())?;
                    let changed =
                        ctx.crm.$service().$method(&caller.principal, id.0.into(), input.$field, input.version).await?;
                    $crate::output::one(&changed)
                }
            }

            typed_api!($api, Operation, entity_of!($service), One);
        };
    };
}
