//! The core's types in the spec: their JSON Schemas (derived in crm-core with
//! `schemars`, feature `schema`) converted into poem-openapi's registry, so request
//! bodies and the `data` of responses are described field by field without writing
//! the core's types a second time here.
//!
//! Only the spec comes from here. Bodies are still read as plain JSON and decoded by
//! [`crate::input`] (every refused field named, no float money), exactly as before.

use std::{
    collections::{BTreeSet, HashSet},
    marker::PhantomData,
    sync::{Mutex, OnceLock},
};

use poem::FromRequest;
use poem_openapi::{
    payload::{Json, ParsePayload, Payload},
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};
use schemars::{
    JsonSchema,
    generate::{Contract, SchemaSettings},
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{error::ApiError, input};

/// A JSON request body described in the spec by `T`'s schema, and read only when the
/// handler asks: it holds the bytes' JSON, or why they are not JSON, so a handler
/// authorizes the caller before it answers 400 for a malformed body or 422 for a field
/// ([`Body::decode`] reads it into `T` through [`input::decode`]).
#[derive(Debug, Clone)]
pub(crate) struct Body<T> {
    json: Result<Value, String>,
    _input: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Body<T> {
    /// Reads the body into `T`: 400 if it is not JSON, 422 naming the refused field.
    pub(crate) fn decode(self) -> Result<T, ApiError> {
        input::decode(self.json.map_err(ApiError::bad_request)?)
    }

    /// Reads a patch body, its `version` from `If-Match` when the header is sent.
    pub(crate) fn decode_patch(self, if_match: Option<&str>, versions: input::Versions) -> Result<T, ApiError> {
        input::decode_patch(self.json.map_err(ApiError::bad_request)?, if_match, versions)
    }
}

impl<T: JsonSchema + Send + Sync> Payload for Body<T> {
    const CONTENT_TYPE: &'static str = Json::<Value>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        Json::<Value>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(T::schema_name().into_owned())
    }

    fn register(registry: &mut Registry) {
        register_schema::<T>(registry, Contract::Deserialize);
    }
}

impl<T: JsonSchema + Send + Sync> ParsePayload for Body<T> {
    const IS_REQUIRED: bool = true;

    /// Takes any bytes: whether they are JSON, and the fields, are checked on decoding.
    async fn from_request(request: &poem::Request, body: &mut poem::RequestBody) -> poem::Result<Self> {
        let bytes = Vec::<u8>::from_request(request, body).await?;
        let json = if bytes.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_slice(&bytes).map_err(|e| format!("parse request payload error: {e}"))
        };
        Ok(Self { json, _input: PhantomData })
    }
}

poem_openapi::impl_apirequest_for_payload!(Body<T>, T: JsonSchema + Send + Sync);

/// Registers `T`'s schema (and every schema it refers to) under schemars' names;
/// returns the name of `T`'s own.
fn register_schema<T: JsonSchema>(registry: &mut Registry, contract: Contract) -> String {
    let settings = SchemaSettings::openapi3().with(|s| s.contract = contract);
    let root = settings.into_generator().into_root_schema_for::<T>();
    let mut root = root.to_value();
    let definitions = root
        .as_object_mut()
        .and_then(|r| r.remove("components"))
        .and_then(|mut c| c.as_object_mut().and_then(|c| c.remove("schemas")));
    if let Some(Value::Object(definitions)) = definitions {
        for (name, schema) in definitions {
            create(registry, name, &schema);
        }
    }
    if let Value::Object(map) = &mut root {
        for key in ["$schema", "title"] {
            map.remove(key);
        }
    }
    let name = T::schema_name().into_owned();
    create(registry, name.clone(), &root);
    name
}

/// Every schema converted from schemars is registered under this type name, so the
/// same name met again (a type used by several bodies) is kept, not refused. The
/// first registration wins: the types shared by inputs and records (enums, `Currency`,
/// `DeliveryLine`) have the same shape whether read or written.
///
/// `additionalProperties: false` (serde's `deny_unknown_fields`) has no place in
/// poem-openapi's schemas: the names of such schemas are kept ([`closed_schemas`]) and
/// the served document says it (`spec.rs`).
struct FromSchemars;

fn closed() -> &'static Mutex<BTreeSet<String>> {
    static CLOSED: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    CLOSED.get_or_init(Default::default)
}

/// The schemas registered so far whose type refuses unknown fields.
pub(crate) fn closed_schemas() -> Vec<String> {
    closed().lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
}

fn create(registry: &mut Registry, name: String, schema: &Value) {
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        closed().lock().unwrap_or_else(|e| e.into_inner()).insert(name.clone());
    }
    registry.create_schema::<FromSchemars, _>(name, |_| match convert(schema) {
        MetaSchemaRef::Inline(meta) => *meta,
        MetaSchemaRef::Reference(target) => {
            MetaSchema { all_of: vec![MetaSchemaRef::Reference(target)], ..MetaSchema::ANY }
        }
    });
}

/// poem-openapi's schemas take `&'static str` names and descriptions. Each distinct
/// string is leaked once, when a spec is first built: the set is bounded by the
/// field names and doc comments of the core's types.
fn intern(s: &str) -> &'static str {
    static STRINGS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut strings = STRINGS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    match strings.get(s) {
        Some(interned) => interned,
        None => {
            let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
            strings.insert(leaked);
            leaked
        }
    }
}

fn convert_all(value: Option<&Value>) -> Vec<MetaSchemaRef> {
    value.and_then(Value::as_array).map(|items| items.iter().map(convert).collect()).unwrap_or_default()
}

/// One JSON Schema (OpenAPI 3.0 flavour, as schemars writes it) as a poem-openapi schema.
fn convert(schema: &Value) -> MetaSchemaRef {
    let Value::Object(map) = schema else {
        // `true` (anything) is all a boolean schema can be here.
        return MetaSchemaRef::Inline(Box::new(MetaSchema::ANY));
    };
    if let Some(target) = map.get("$ref").and_then(Value::as_str) {
        let name = target.rsplit('/').next().unwrap_or(target);
        return MetaSchemaRef::Reference(name.to_owned());
    }
    let mut meta = MetaSchema::ANY;
    let mut nullable = map.get("nullable").and_then(Value::as_bool).unwrap_or(false);
    match map.get("type") {
        Some(Value::String(ty)) => meta.ty = intern(ty),
        Some(Value::Array(types)) => {
            nullable |= types.iter().any(|t| t == "null");
            if let Some(ty) = types.iter().filter_map(Value::as_str).find(|t| *t != "null") {
                meta.ty = intern(ty);
            }
        }
        _ => {}
    }
    meta.nullable = nullable;
    meta.format = map.get("format").and_then(Value::as_str).map(intern);
    meta.description = map.get("description").and_then(Value::as_str).map(intern);
    meta.pattern = map.get("pattern").and_then(Value::as_str).map(str::to_owned);
    meta.default = map.get("default").cloned();
    meta.example = map.get("example").cloned();
    meta.deprecated = map.get("deprecated").and_then(Value::as_bool).unwrap_or(false);
    meta.read_only = map.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
    meta.write_only = map.get("writeOnly").and_then(Value::as_bool).unwrap_or(false);
    meta.minimum = map.get("minimum").and_then(Value::as_f64);
    meta.maximum = map.get("maximum").and_then(Value::as_f64);
    meta.min_length = map.get("minLength").and_then(Value::as_u64).map(|n| n as usize);
    meta.max_length = map.get("maxLength").and_then(Value::as_u64).map(|n| n as usize);
    meta.min_items = map.get("minItems").and_then(Value::as_u64).map(|n| n as usize);
    meta.max_items = map.get("maxItems").and_then(Value::as_u64).map(|n| n as usize);
    meta.enum_items = match (map.get("enum"), map.get("const")) {
        (Some(Value::Array(items)), _) => items.clone(),
        (_, Some(only)) => vec![only.clone()],
        _ => Vec::new(),
    };
    if let Some(Value::Object(properties)) = map.get("properties") {
        meta.properties = properties.iter().map(|(name, s)| (intern(name), convert(s))).collect();
    }
    meta.required = map
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).map(intern).collect())
        .unwrap_or_default();
    meta.items = match map.get("items") {
        Some(Value::Array(positions)) => Some(Box::new(tuple_items(positions))),
        Some(items) if items.is_object() => Some(Box::new(convert(items))),
        _ => None,
    };
    meta.additional_properties =
        map.get("additionalProperties").filter(|a| a.is_object()).map(|a| Box::new(convert(a)));
    meta.one_of = convert_all(map.get("oneOf"));
    meta.any_of = convert_all(map.get("anyOf"));
    meta.all_of = convert_all(map.get("allOf"));
    MetaSchemaRef::Inline(Box::new(meta))
}

/// The `items` of a tuple (`Vec<(TaskStatus, u64)>`'s pairs). schemars writes one schema
/// per position (`items: [a, b]`, its OpenAPI 3.0 rendering of `prefixItems`), which
/// OpenAPI 3.0 does not have: without this the array would have no `items` at all and
/// client generators drop it. Each element is any of the positions' schemas; the
/// tuple's length stays in `minItems`/`maxItems`.
fn tuple_items(positions: &[Value]) -> MetaSchemaRef {
    let mut distinct: Vec<&Value> = Vec::new();
    for position in positions {
        if !distinct.contains(&position) {
            distinct.push(position);
        }
    }
    match distinct.as_slice() {
        [only] => convert(only),
        _ => MetaSchemaRef::Inline(Box::new(MetaSchema {
            any_of: distinct.into_iter().map(convert).collect(),
            ..MetaSchema::ANY
        })),
    }
}

/// Registers `T`'s schema as the API writes it; returns its name.
pub(crate) fn register_serialized<T: JsonSchema>(registry: &mut Registry) -> String {
    register_schema::<T>(registry, Contract::Serialize)
}

/// Registers the envelope of a response whose `data` is `T` (or a page of them) and
/// returns its name: `<T>Envelope` or `<T>Page`.
pub(crate) fn register_envelope<T: JsonSchema>(registry: &mut Registry, data: Data) -> String {
    let record = register_schema::<T>(registry, Contract::Serialize);
    let name = envelope_name::<T>(data);
    if let Data::Page = data {
        <Pagination as Type>::register(registry);
    }
    registry.create_schema::<FromSchemars, _>(name.clone(), |_| {
        let record_ref = MetaSchemaRef::Reference(record.clone());
        let data_schema = match data {
            Data::Record | Data::Result => MetaSchema {
                description: Some(if let Data::Record = data { "The record." } else { "The result." }),
                all_of: vec![record_ref],
                ..MetaSchema::ANY
            },
            Data::Page => MetaSchema {
                description: Some("The records of this page."),
                items: Some(Box::new(record_ref)),
                ..MetaSchema::new("array")
            },
        };
        let success = MetaSchema { description: Some("Always `true`."), ..MetaSchema::new("boolean") };
        let mut properties = vec![
            ("success", MetaSchemaRef::Inline(Box::new(success))),
            ("data", MetaSchemaRef::Inline(Box::new(data_schema))),
        ];
        let mut required = vec!["success", "data"];
        if let Data::Page = data {
            properties.push(("pagination", <Pagination as Type>::schema_ref()));
            required.push("pagination");
        }
        MetaSchema { description: Some("A successful response."), properties, required, ..MetaSchema::new("object") }
    });
    name
}

/// The name of the envelope [`register_envelope`] registers for `T`.
pub(crate) fn envelope_name<T: JsonSchema>(data: Data) -> String {
    match data {
        Data::Record | Data::Result => format!("{}Envelope", T::schema_name()),
        Data::Page => format!("{}Page", T::schema_name()),
    }
}

/// Where the next page starts, and how big pages are.
#[derive(Debug, Clone, PartialEq, Eq, poem_openapi::Object)]
pub struct Pagination {
    /// The `cursor` of the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
    /// Rows per page.
    pub limit: u64,
    /// Every matching row, when `total=true` was asked for.
    #[oai(skip_serializing_if_is_none)]
    pub total: Option<u64>,
}

/// What the `data` of a successful response is.
#[derive(Debug, Clone, Copy)]
pub enum Data {
    /// One record.
    Record,
    /// A page of records, with `pagination`.
    Page,
    /// Another result (tokens, a conversion, a report…).
    Result,
}
