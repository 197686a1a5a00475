//! The document served at `/api/v1/openapi.json`: poem-openapi's, completed with what
//! the server enforces and poem-openapi cannot say, so generated clients and fuzzers
//! send what the server accepts.
//!
//! Each addition comes from where the rule lives, never a copy: `limit`'s bounds from
//! [`PageRequest::MAX_LIMIT`], `additionalProperties: false` from the core types that
//! refuse unknown fields (serde's `deny_unknown_fields`, seen in their schemars schemas),
//! the `If-Match` form from the one parser of it ([`crate::input::version_from_if_match`]).
//! The names' lengths, currencies and decimal patterns are in the core's schemas already.

use std::sync::OnceLock;

use crm_core::PageRequest;
use serde_json::{Map, Value, json};

use super::schema;

/// The `If-Match` values [`crate::input::version_from_if_match`] reads: an `ETag` as
/// sent (`"3"`, weak `W/"3"`) or the bare version.
pub const IF_MATCH_PATTERN: &str = r#"^(W/)?"?[0-9]+"?$"#;

/// poem-openapi's own document, as JSON text (generated once: each generation walks
/// every operation and schema of the API).
pub fn generated() -> &'static str {
    static GENERATED: OnceLock<String> = OnceLock::new();
    GENERATED.get_or_init(|| super::service().spec())
}

/// The completed spec, as JSON text (built once, at its first use).
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut spec: Value = serde_json::from_str(generated()).unwrap_or_default();
        complete(&mut spec);
        serde_json::to_string_pretty(&spec).unwrap_or_default()
    })
}

/// The Swagger UI page, showing the completed document rather than poem-openapi's
/// (built once, at the first visit: start-up does not pay for its megabytes).
pub fn swagger_page() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| super::service().swagger_ui_html().replace(generated(), document()))
}

/// Adds to `spec` what poem-openapi's document leaves out.
fn complete(spec: &mut Value) {
    for operation in operations(spec) {
        bound_parameters(operation);
    }
    document_idempotency_keys(spec);
    close_request_bodies(spec);
    link_creates(spec);
    document_events(spec);
}

/// `x-webhook-events`: every event of the core's catalogue with its payload's schema
/// (the `data` of a webhook delivery), and the catalogue's version. OpenAPI 3.0 has no
/// place for callbacks nobody subscribes to by request, hence an extension.
fn document_events(spec: &mut Value) {
    use crm_core::webhooks::catalogue::{CATALOGUE_VERSION, catalogue};
    use schemars::generate::{Contract, SchemaSettings};
    let mut generator = SchemaSettings::openapi3().with(|s| s.contract = Contract::Serialize).into_generator();
    let events: Map<String, Value> = catalogue()
        .iter()
        .map(|e| (e.name.to_owned(), json!({ "summary": e.summary, "payload": e.payload_schema(&mut generator) })))
        .collect();
    if let Some(schemas) = spec.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (name, schema) in generator.take_definitions(true) {
            schemas.entry(name).or_insert(schema);
        }
    }
    spec["x-webhook-events"] = json!({ "catalogue_version": CATALOGUE_VERSION, "events": events });
}

fn operations(spec: &mut Value) -> impl Iterator<Item = &mut Value> {
    let paths = spec.get_mut("paths").and_then(Value::as_object_mut).into_iter().flat_map(|p| p.values_mut());
    paths.filter_map(Value::as_object_mut).flat_map(|methods| methods.values_mut())
}

/// `limit`'s range and `If-Match`'s form.
fn bound_parameters(operation: &mut Value) {
    let parameters = operation.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten();
    for parameter in parameters {
        let name = parameter["name"].as_str().unwrap_or_default().to_owned();
        let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut) else { continue };
        match name.as_str() {
            "limit" => {
                schema.insert("minimum".into(), json!(1));
                schema.insert("maximum".into(), json!(PageRequest::MAX_LIMIT));
            }
            "If-Match" => {
                schema.insert("pattern".into(), json!(IF_MATCH_PATTERN));
            }
            _ => {}
        }
    }
}

/// The `Idempotency-Key` header every authenticated `POST` accepts (read by the
/// middleware in [`crate::idempotency`], before routing, so no operation declares it).
fn document_idempotency_keys(spec: &mut Value) {
    let paths = spec.get_mut("paths").and_then(Value::as_object_mut).into_iter().flat_map(|p| p.values_mut());
    for post in paths.filter_map(|methods| methods.get_mut("post")) {
        if post.get("security").is_none() {
            continue;
        }
        let key = json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Makes a retry safe: the first response to this key and request is kept for 24 hours \
                            and replayed (with `Idempotency-Replayed: true`); the same key with another request \
                            is 422, and while the first still runs 409.",
            "schema": { "type": "string", "minLength": 1, "maxLength": crate::idempotency::MAX_KEY_LEN },
        });
        match post.get_mut("parameters").and_then(Value::as_array_mut) {
            Some(parameters) => parameters.push(key),
            None => post["parameters"] = json!([key]),
        }
    }
}

/// `additionalProperties: false` on every schema whose type refuses unknown fields.
fn close_request_bodies(spec: &mut Value) {
    let Some(schemas) = spec.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else { return };
    for name in schema::closed_schemas() {
        if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
            schema.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
}

/// On each create's 201: links to the created record's get, update and delete, with
/// its id taken from the response (`data.meta.id`).
fn link_creates(spec: &mut Value) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else { return };
    let item_paths: Vec<(String, Map<String, Value>)> = paths
        .iter()
        .filter(|(path, _)| !path.ends_with("}"))
        .filter_map(|(path, _)| {
            let item = paths.get(&format!("{}/{{id}}", path.trim_end_matches('/')))?.as_object()?;
            let links: Map<String, Value> = ["get", "patch", "delete"]
                .iter()
                .filter_map(|method| item.get(*method)?.get("operationId")?.as_str())
                .map(|id| {
                    (
                        id.to_owned(),
                        json!({ "operationId": id, "parameters": { "id": "$response.body#/data/meta/id" } }),
                    )
                })
                .collect();
            (!links.is_empty()).then(|| (path.clone(), links))
        })
        .collect();
    for (path, links) in item_paths {
        if let Some(created) = paths.get_mut(&path).and_then(|p| p.pointer_mut("/post/responses/201")) {
            created["links"] = Value::Object(links);
        }
    }
}
