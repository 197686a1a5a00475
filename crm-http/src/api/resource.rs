//! `resource!`: one declaration per resource, expanding to one API struct whose one
//! `#[OpenApi]` impl holds all of that resource's operations, as poem-openapi intends.
//!
//! The operations most resources share are written once here: `list`, `get`, `create`,
//! `update`, `delete`, `action` (a state change with no input but the version) and
//! `set` (a change of one field, with its body type). A resource's own operations are
//! written out in its declaration under `extra { … }` and land in the same impl. Paths
//! are relative to the resource's (`prefix_path`); every operation names its stable
//! `operationId`.
//!
//! ```text
//! resource! {
//!     /// Contacts.
//!     ContactsApi at "/contacts", tag "ApiTags::Contacts", service contacts, record Contact;
//!     list "listContacts" "Contacts of the tenant.", filter ContactFilter;
//!     get "getContact";
//!     create "createContact": create(NewContact);
//!     update "updateContact"(ContactPatch);
//!     delete "deleteContact";
//!     action send "/:id/send" "sendQuote" "Sends a draft quote.";
//!     set change_status "/:id/status" "changeLeadStatus" "Moves a lead.", LeadStatusBody { status: LeadStatus };
//!     extra { /* #[oai(…)] async fn …, written out */ }
//! }
//! ```
//!
//! A listing's filters are the record's declared fields (`Entity::FIELDS` in crm-core):
//! [`Filtered`] documents each as an optional query parameter, and the handler reads
//! the whole query string into the core's filter type (which refuses names it does not
//! know, and a core test holds to the same declarations).
//!
//! Every operation authenticates (the `Auth` extractor, first), parses, calls one core
//! service method with the caller's principal, and presents the result. Nothing here
//! decides who may do what: before reading a body, an operation asks the core's
//! permission matrix ([`may`]) whether the caller has any right to the action at all,
//! so a caller who may not create products hears 403, not what is wrong with its body.

macro_rules! resource {
    (
        $(#[$doc:meta])*
        $api:ident at $path:tt, tag $tag:tt, service $service:ident, record $record:ty;
        $(list $list_id:tt $list_doc:tt, filter $filter:ty;)?
        $(get $get_id:tt;)?
        $(create $create_id:tt: $create:ident($input:ty);)?
        $(update $update_id:tt($patch:ty);)?
        $(delete $delete_id:tt;)?
        $(action $action:ident $action_path:tt $action_id:tt $action_doc:tt;)*
        $(set $set:ident $set_path:tt $set_id:tt $set_doc:tt, $body:ident { $field:ident: $field_ty:ty };)*
        $(extra { $($extra:tt)* })?
    ) => {
        $(#[$doc])*
        pub(crate) struct $api;

        $(
            impl $crate::api::resource::Listing for $api {
                const LIST_OPERATION: &'static str = $list_id;
                const FIELDS: &'static [crm_core::fields::Field] = <$record as crm_core::entity::Entity>::FIELDS;
            }
        )?

        $(
            #[doc = $set_doc]
            #[derive(serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            pub(crate) struct $body {
                /// The new value.
                $field: $field_ty,
                /// The version read (or send `If-Match`).
                version: Option<u64>,
            }
        )*

        #[poem_openapi::OpenApi(prefix_path = $path, tag = $tag)]
        impl $api {
            $(
                #[doc = $list_doc]
                #[oai(path = "/", method = "get", operation_id = $list_id)]
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
                ) -> Result<$crate::output::Listed<$record>, $crate::error::BodilessError> {
                    // The filters are read from the query string as a whole; `Filtered`
                    // documents them from the record's field declarations.
                    let caller = auth.into_caller();
                    let filter: $filter = $crate::input::filter_from_query(req)?;
                    let page = $crate::input::page_request(limit.0, cursor.0, sort.0, search.0, total.0);
                    let found = ctx.crm.$service().list(&caller.principal, &filter, &page).await?;
                    Ok($crate::output::page(found, &page)?)
                }
            )?

            $(
                /// One record; another tenant's or an unreachable id is 404.
                #[oai(path = "/:id", method = "get", operation_id = $get_id)]
                async fn get(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    id: poem_openapi::param::Path<uuid::Uuid>,
                ) -> Result<$crate::output::One<$record>, $crate::error::BodilessError> {
                    let caller = auth.into_caller();
                    let found = ctx.crm.$service().get(&caller.principal, id.0.into()).await?;
                    Ok($crate::output::one(&found)?)
                }
            )?

            $(
                /// Creates one (any amounts as decimal strings, not JSON numbers).
                #[oai(path = "/", method = "post", operation_id = $create_id)]
                async fn create(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    body: $crate::api::schema::Body<$input>,
                ) -> Result<$crate::output::Created<$record>, $crate::error::ApiError> {
                    let caller = auth.into_caller();
                    $crate::api::resource::may::<$record>(&caller, crm_core::authz::Action::Create)?;
                    let input: $input = body.decode()?;
                    let created = ctx.crm.$service().$create(&caller.principal, input).await?;
                    $crate::output::created(&created)
                }
            )?

            $(
                /// Changes the fields sent; a stale version is 409.
                #[oai(path = "/:id", method = "patch", operation_id = $update_id)]
                async fn update(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    id: poem_openapi::param::Path<uuid::Uuid>,
                    /// The `ETag` of the version read.
                    #[oai(name = "If-Match")]
                    if_match: poem_openapi::param::Header<Option<String>>,
                    body: $crate::api::schema::Body<$patch>,
                ) -> Result<$crate::output::One<$record>, $crate::error::ApiError> {
                    let caller = auth.into_caller();
                    $crate::api::resource::may::<$record>(&caller, crm_core::authz::Action::Update)?;
                    let patch: $patch = body.decode_patch(if_match.0.as_deref(), ctx.versions)?;
                    let updated = ctx.crm.$service().update(&caller.principal, id.0.into(), patch).await?;
                    $crate::output::one(&updated)
                }
            )?

            $(
                /// Deletes one; refused (409) while other records still point at it.
                #[oai(path = "/:id", method = "delete", operation_id = $delete_id)]
                async fn delete(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    id: poem_openapi::param::Path<uuid::Uuid>,
                    /// The `ETag` of the version read.
                    #[oai(name = "If-Match")]
                    if_match: poem_openapi::param::Header<Option<String>>,
                ) -> Result<$crate::output::Done<$crate::api::results::Deleted>, $crate::error::BodilessError> {
                    let caller = auth.into_caller();
                    let version = $crate::input::required_version(if_match.0.as_deref(), ctx.versions)?;
                    ctx.crm.$service().delete(&caller.principal, id.0.into(), version).await?;
                    Ok($crate::output::done(&$crate::api::results::Deleted::new(id.0))?)
                }
            )?

            $(
                #[doc = $action_doc]
                #[oai(path = $action_path, method = "post", operation_id = $action_id)]
                async fn $action(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    id: poem_openapi::param::Path<uuid::Uuid>,
                    /// The `ETag` of the version read.
                    #[oai(name = "If-Match")]
                    if_match: poem_openapi::param::Header<Option<String>>,
                ) -> Result<$crate::output::One<$record>, $crate::error::BodilessError> {
                    let caller = auth.into_caller();
                    let version = $crate::input::required_version(if_match.0.as_deref(), ctx.versions)?;
                    let changed = ctx.crm.$service().$action(&caller.principal, id.0.into(), version).await?;
                    Ok($crate::output::one(&changed)?)
                }
            )*

            $(
                #[doc = $set_doc]
                #[oai(path = $set_path, method = "post", operation_id = $set_id)]
                async fn $set(
                    &self,
                    ctx: poem::web::Data<&std::sync::Arc<$crate::context::AppCtx>>,
                    auth: $crate::auth::Auth,
                    id: poem_openapi::param::Path<uuid::Uuid>,
                    /// The `ETag` of the version read.
                    #[oai(name = "If-Match")]
                    if_match: poem_openapi::param::Header<Option<String>>,
                    body: $crate::api::schema::Body<$body>,
                ) -> Result<$crate::output::One<$record>, $crate::error::ApiError> {
                    let caller = auth.into_caller();
                    $crate::api::resource::may::<$record>(&caller, crm_core::authz::Action::Update)?;
                    let input: $body = body.decode_patch(if_match.0.as_deref(), ctx.versions)?;
                    let changed =
                        ctx.crm.$service().$set(&caller.principal, id.0.into(), input.$field, input.version).await?;
                    $crate::output::one(&changed)
                }
            )*

            $($($extra)*)?
        }
    };
}

/// Refuses, as the core would, a caller the permission matrix (cut by API-key scopes)
/// gives no right to `action` on `E`'s resource at all. Whether the right reaches a
/// given record stays the service's call.
pub(crate) fn may<E: crm_core::entity::Entity>(
    caller: &crate::auth::Caller,
    action: crm_core::authz::Action,
) -> Result<(), crate::error::ApiError> {
    let p = &caller.principal;
    match p.access(E::RESOURCE, action) {
        crm_core::authz::Access::Denied => Err(crm_core::CrmError::Forbidden(format!(
            "{} may not {} {}",
            p.role().as_str(),
            format!("{action:?}").to_lowercase(),
            E::RESOURCE
        ))
        .into()),
        _ => Ok(()),
    }
}

/// A resource whose listing filters on its record's declared fields.
pub(crate) trait Listing {
    /// The `operationId` of the listing.
    const LIST_OPERATION: &'static str;
    /// The record's indexed fields, as crm-core declares them.
    const FIELDS: &'static [crm_core::fields::Field];
}

/// The schema of a filter parameter: the field's own type where the parameter takes one
/// value of it (`company_id` a UUID, `created_from` an instant), a boolean for "passed"
/// filters, text for comma-separated lists.
fn filter_schema(fields: &[crm_core::fields::Field], param: &str) -> poem_openapi::registry::MetaSchemaRef {
    use crm_core::fields::{FieldType, FilterOn};
    use poem_openapi::{registry::MetaSchema, types::Type};
    let typed = fields.iter().find_map(|f| {
        f.filters.iter().flatten().find_map(|how| match *how {
            FilterOn::Eq if f.name == param => Some(Some(f.ty)),
            FilterOn::Range(from, to) if from == param || to == param => Some(Some(f.ty)),
            FilterOn::AtLeast(p) if p == param => Some(Some(f.ty)),
            FilterOn::Passed(p) if p == param => Some(Some(FieldType::Bool)),
            FilterOn::AnyOf(p) if p == param => Some(None),
            _ => None,
        })
    });
    match typed.flatten() {
        Some(FieldType::Uuid) => uuid::Uuid::schema_ref(),
        Some(FieldType::Bool) => bool::schema_ref(),
        Some(FieldType::Int) => i64::schema_ref(),
        Some(FieldType::Date) => chrono::NaiveDate::schema_ref(),
        Some(FieldType::Timestamp) => chrono::DateTime::<chrono::Utc>::schema_ref(),
        Some(FieldType::Decimal) => poem_openapi::registry::MetaSchemaRef::Inline(Box::new(MetaSchema {
            pattern: Some(crm_core::money::DECIMAL_TEXT_PATTERN.to_owned()),
            ..MetaSchema::new("string")
        })),
        Some(FieldType::Text) | None => String::schema_ref(),
    }
}

/// A resource API whose listing documents its filters as query parameters, derived
/// from the record's field declarations (name, type and what the filter does).
pub(crate) struct Filtered<A>(pub(crate) A);

impl<A: poem_openapi::OpenApi + Listing> poem_openapi::OpenApi for Filtered<A> {
    fn meta() -> Vec<poem_openapi::registry::MetaApi> {
        use poem_openapi::registry::{MetaOperationParam, MetaParamIn};
        let mut apis = A::meta();
        let operations = apis.iter_mut().flat_map(|a| a.paths.iter_mut()).flat_map(|p| p.operations.iter_mut());
        for operation in operations.filter(|o| o.operation_id == Some(A::LIST_OPERATION)) {
            let params = crm_core::fields::filter_params(A::FIELDS);
            operation.params.extend(params.into_iter().map(|(name, description)| MetaOperationParam {
                name: name.to_owned(),
                schema: filter_schema(A::FIELDS, name),
                in_type: MetaParamIn::Query,
                description: Some(description),
                required: false,
                deprecated: false,
                explode: true,
                style: None,
            }));
        }
        apis
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        A::register(registry);
    }

    fn add_routes(
        self,
        route_table: &mut std::collections::HashMap<
            String,
            std::collections::HashMap<poem::http::Method, poem::endpoint::BoxEndpoint<'static>>,
        >,
    ) {
        self.0.add_routes(route_table);
    }
}
