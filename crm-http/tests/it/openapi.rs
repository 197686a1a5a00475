//! The OpenAPI spec: a snapshot makes API changes deliberate, and every operation
//! documents its error statuses.
//!
//! After a deliberate change: `CRM_UPDATE_SNAPSHOTS=1 cargo nextest run -p crm-http openapi`.

use poem::http::{Method, StatusCode};
use serde_json::Value;

use crate::support::{Body, harness};

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/openapi.snapshot.json");

fn spec() -> Value {
    serde_json::from_str(&crm_http::api::service().spec()).unwrap()
}

#[test]
fn the_spec_matches_its_snapshot() {
    let current = serde_json::to_string_pretty(&spec()).unwrap() + "\n";
    if std::env::var_os("CRM_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &current).unwrap();
    }
    let snapshot = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(
        snapshot == current,
        "the OpenAPI spec changed; if that is intended, rerun with CRM_UPDATE_SNAPSHOTS=1 and commit {SNAPSHOT}"
    );
}

#[test]
fn every_operation_documents_its_errors_and_protected_ones_their_security() {
    let spec = spec();
    let paths = spec["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, methods) in paths {
        for (method, op) in methods.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for status in ["400", "401", "403", "404", "409", "422", "429", "500", "503"] {
                assert!(responses.contains_key(status), "{method} {path} lacks {status}");
            }
            let public = path == "/" || path == "/auth/login" || path == "/auth/refresh";
            assert_eq!(op.get("security").is_some(), !public, "{method} {path} security");
            if !public {
                // The real alternatives and no empty one (which makes credentials optional).
                let alternatives: Vec<String> = op["security"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_object().unwrap().keys().cloned().collect::<Vec<_>>().join("+"))
                    .collect();
                assert_eq!(alternatives, ["BearerAuth", "ApiKeyAuth", "CookieAuth"], "{method} {path} security");
            }
            operations += 1;
        }
    }
    // Every resource of the issue is there.
    for prefix in [
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/me",
        "/auth/change-password",
        "/users",
        "/companies",
        "/leads/{id}/convert",
        "/contacts",
        "/deals/{id}/stage",
        "/quotes/{id}/send",
        "/quotes/{id}/accept",
        "/quotes/{id}/reject",
        "/invoices/{id}/issue",
        "/invoices/{id}/cancel",
        "/payments/{id}/void",
        "/delivery-notes/{id}/ship",
        "/projects",
        "/milestones",
        "/tasks",
        "/products",
        "/product-categories",
        "/notifications/{id}/read",
        "/notifications/read-all",
        "/api-keys",
        "/audit-logs",
        "/reports/{name}",
    ] {
        assert!(paths.contains_key(prefix), "{prefix} is missing from the spec");
    }
    assert!(operations >= 80, "{operations} operations");
}

#[tokio::test]
async fn the_spec_and_the_docs_are_served() {
    let h = harness().await;
    let served = h.call(Method::GET, "/api/v1/openapi.json", &[], Body::None).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.body, spec());
    let docs = h.cli.get("/docs").send().await;
    docs.assert_status_is_ok();
    assert!(docs.0.into_body().into_string().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn every_documented_filter_is_one_the_core_reads() {
    let h = harness().await;
    let token = h.token(&h.w.admin).await;
    let spec = spec();
    let paging = ["limit", "cursor", "sort", "search", "total"];
    let mut checked = 0;
    for (path, methods) in spec["paths"].as_object().unwrap() {
        let Some(list) = methods.get("get") else { continue };
        let params = list["parameters"].as_array().cloned().unwrap_or_default();
        for param in params.iter().filter(|p| p["in"] == "query") {
            let name = param["name"].as_str().unwrap();
            if paging.contains(&name) || path.contains('{') {
                continue;
            }
            // A nonsense value: refused for its value, never as an unknown filter.
            let reply = h.get(&token, &format!("/api/v1{path}?{name}=%7Enonsense")).await;
            let message = reply.body["error"]["message"].as_str().unwrap_or("");
            assert!(!message.contains("unknown field"), "{path} documents `{name}`, which the core does not read");
            checked += 1;
        }
    }
    assert!(checked >= 50, "{checked} filters checked");
}

/// The schema an operation's body or response points at, following `$ref`s.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(target) => {
            let name = target.rsplit('/').next().unwrap();
            resolve(spec, &spec["components"]["schemas"][name])
        }
        None => schema,
    }
}

#[test]
fn every_body_is_described_field_by_field() {
    let spec = spec();
    let mut bodies = 0;
    for (path, methods) in spec["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            if method != "post" && method != "patch" {
                continue;
            }
            let Some(body) = op.get("requestBody") else {
                // Actions without input (the version comes from If-Match).
                continue;
            };
            let content = body["content"].as_object().unwrap();
            let schema = resolve(&spec, &content.values().next().unwrap()["schema"]);
            let properties = schema["properties"].as_object();
            assert!(
                properties.is_some_and(|p| !p.is_empty()),
                "{method} {path}: the body is not described field by field: {schema}"
            );
            bodies += 1;
        }
    }
    assert!(bodies >= 30, "{bodies} bodies checked");

    // The body of POST /contacts is the core's NewContact.
    let create = &spec["paths"]["/contacts"]["post"]["requestBody"]["content"];
    let new_contact = resolve(&spec, &create.as_object().unwrap().values().next().unwrap()["schema"]);
    for field in ["first_name", "last_name", "email", "company_id"] {
        assert!(new_contact["properties"].get(field).is_some(), "NewContact lacks {field}");
    }
    assert_eq!(new_contact["properties"]["company_id"]["format"], "uuid");
    let required: Vec<&str> = new_contact["required"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(required, ["first_name", "last_name"]);

    // Money travels as strings.
    let line = &spec["components"]["schemas"]["LineInput"];
    for field in ["quantity", "unit_price", "discount_percent", "tax_rate"] {
        assert_eq!(line["properties"][field]["type"], "string", "LineInput.{field}");
    }
    let invoice = &spec["components"]["schemas"]["NewInvoice"];
    assert_eq!(invoice["properties"]["lines"]["items"]["$ref"], "#/components/schemas/LineInput");
}

#[test]
fn record_responses_describe_their_data() {
    let spec = spec();
    let data_of = |path: &str, method: &str, status: &str| {
        let content = &spec["paths"][path][method]["responses"][status]["content"];
        resolve(&spec, &content.as_object().unwrap().values().next().unwrap()["schema"])["properties"]["data"].clone()
    };
    let one = data_of("/contacts/{id}", "get", "200");
    assert_eq!(one["allOf"][0]["$ref"], "#/components/schemas/Contact");
    let page = data_of("/invoices", "get", "200");
    assert_eq!(page["items"]["$ref"], "#/components/schemas/Invoice");
    let created = data_of("/contacts", "post", "201");
    assert_eq!(created["allOf"][0]["$ref"], "#/components/schemas/Contact");

    let schemas = &spec["components"]["schemas"];
    let contact = &schemas["Contact"]["properties"];
    for field in ["meta", "first_name", "last_name", "email", "company_id", "owner_id"] {
        assert!(contact.get(field).is_some(), "Contact lacks {field}");
    }
    assert_eq!(schemas["Invoice"]["properties"]["balance_due"]["type"], "string");
    // Secrets are not part of a record as the API shows it.
    assert!(schemas["User"]["properties"].get("password_hash").is_none());
    assert!(schemas["ApiKey"]["properties"].get("secret_hash").is_none());
}
