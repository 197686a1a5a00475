//! Writing responses: the one success envelope (`success`, `data`, `pagination`), typed
//! in the spec by what its `data` is; records without their secret fields; versions as
//! `ETag`s.
//!
//! An operation returns [`One`], [`Created`], [`Listed`] or [`Done`] of the type its
//! `data` is. That type names the `data` schema in the spec (through
//! `api::schema`) and is the only way to build the response, so the spec and
//! the body come from the same type.

use std::marker::PhantomData;

use crm_core::{Page, PageRequest, entity::Entity};
use poem::{
    IntoResponse, Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    ApiResponse,
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};
use schemars::JsonSchema;
use serde::{Serialize, Serializer};
use serde_json::Value;

pub use crate::api::schema::{Data, Pagination};
use crate::{api::schema, error::ApiError};

/// How a successful response is shaped: its status, whether it carries the record's
/// version as its `ETag`, and what its `data` is.
pub trait Shape {
    /// The status.
    const STATUS: StatusCode;
    /// Whether the response carries an `ETag` (only single records have a version).
    const ETAG: bool;
    /// One record, a page of them, or another result.
    const DATA: Data;
    /// The response's description in the spec.
    const DESCRIPTION: &'static str;
}

/// A record, `200` with its `ETag`.
#[derive(Debug)]
pub enum OneRecord {}

impl Shape for OneRecord {
    const STATUS: StatusCode = StatusCode::OK;
    const ETAG: bool = true;
    const DATA: Data = Data::Record;
    const DESCRIPTION: &'static str = "The record, with its version as its `ETag`.";
}

/// A new record, `201` with its `ETag`.
#[derive(Debug)]
pub enum NewRecord {}

impl Shape for NewRecord {
    const STATUS: StatusCode = StatusCode::CREATED;
    const ETAG: bool = true;
    const DATA: Data = Data::Record;
    const DESCRIPTION: &'static str = "The new record, with its version as its `ETag`.";
}

/// A page of records with its `pagination`, `200`.
#[derive(Debug)]
pub enum PageOfRecords {}

impl Shape for PageOfRecords {
    const STATUS: StatusCode = StatusCode::OK;
    const ETAG: bool = false;
    const DATA: Data = Data::Page;
    const DESCRIPTION: &'static str = "A page of records.";
}

/// Any other result (tokens, a conversion, a report, a deletion), `200`.
#[derive(Debug)]
pub enum Outcome {}

impl Shape for Outcome {
    const STATUS: StatusCode = StatusCode::OK;
    const ETAG: bool = false;
    const DATA: Data = Data::Result;
    const DESCRIPTION: &'static str = "The result.";
}

/// A successful response whose `data` is `T` (or a page of `T`), shaped by `S`: its
/// body already written, straight from the typed data (no intermediate JSON tree).
#[derive(Debug)]
pub struct Success<T, S> {
    body: Vec<u8>,
    etag: Option<String>,
    _described_as: PhantomData<fn() -> (T, S)>,
}

/// One record, `200` with its `ETag`.
pub type One<T> = Success<T, OneRecord>;
/// A new record, `201` with its `ETag`.
pub type Created<T> = Success<T, NewRecord>;
/// A page of records.
pub type Listed<T> = Success<T, PageOfRecords>;
/// A result that is not a record.
pub type Done<T> = Success<T, Outcome>;

/// The one success envelope, as written.
#[derive(Serialize)]
struct Envelope<D> {
    success: bool,
    data: D,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination: Option<Value>,
}

impl<T, S> Success<T, S> {
    fn new(data: impl Serialize, pagination: Option<&Pagination>, etag: Option<String>) -> Result<Self, ApiError> {
        let envelope = Envelope { success: true, data, pagination: pagination.and_then(ToJSON::to_json) };
        let body = serde_json::to_vec(&envelope).map_err(|e| ApiError::internal(&e))?;
        Ok(Self { body, etag, _described_as: PhantomData })
    }
}

impl<T: JsonSchema, S: Shape> ApiResponse for Success<T, S> {
    fn meta() -> MetaResponses {
        let etag = MetaHeader {
            name: "ETag".into(),
            description: Some("The record's version; send it back as `If-Match`.".into()),
            required: true,
            deprecated: false,
            schema: String::schema_ref(),
        };
        MetaResponses {
            responses: vec![MetaResponse {
                description: S::DESCRIPTION,
                status: Some(S::STATUS.as_u16()),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json; charset=utf-8",
                    schema: MetaSchemaRef::Reference(schema::envelope_name::<T>(S::DATA)),
                }],
                headers: if S::ETAG { vec![etag] } else { Vec::new() },
            }],
        }
    }

    fn register(registry: &mut Registry) {
        schema::register_envelope::<T>(registry, S::DATA);
    }
}

impl<T: Send, S: Shape + Send> IntoResponse for Success<T, S> {
    fn into_response(self) -> Response {
        let mut response = Response::builder().content_type("application/json; charset=utf-8").body(self.body);
        response.set_status(S::STATUS);
        if let Some(etag) = self.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            response.headers_mut().insert(header::ETAG, etag);
        }
        response
    }
}

/// A record as the API shows it: its JSON without the fields the core declares secret
/// (password and key hashes), described in the spec by `E`'s schema.
#[derive(Debug, Clone)]
pub struct Shown<E> {
    json: Value,
    _record: PhantomData<fn() -> E>,
}

impl<E: Entity> Shown<E> {
    /// `record` as the API shows it.
    pub fn of(record: &E) -> Result<Self, ApiError> {
        Ok(Self { json: record_json(record)?.0, _record: PhantomData })
    }
}

impl<E> Serialize for Shown<E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

impl<E: JsonSchema> JsonSchema for Shown<E> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        E::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        E::schema_id()
    }

    fn inline_schema() -> bool {
        E::inline_schema()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        E::json_schema(generator)
    }
}

/// The `ETag` of a version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// A record as JSON without the fields the core declares secret (password and key
/// hashes), plus its version.
pub fn record_json<E: Entity>(record: &E) -> Result<(Value, u64), ApiError> {
    let value = serde_json::to_value(Public(record)).map_err(|e| ApiError::internal(&e))?;
    Ok((value, record.meta().version))
}

/// A record as the API writes it: the entity itself, or, for the few kinds with secret
/// fields, its JSON without them.
struct Public<'a, E>(&'a E);

impl<E: Entity> Serialize for Public<'_, E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if E::SECRET_FIELDS.is_empty() {
            return self.0.serialize(serializer);
        }
        let mut value = serde_json::to_value(self.0).map_err(serde::ser::Error::custom)?;
        if let Value::Object(map) = &mut value {
            for secret in E::SECRET_FIELDS {
                map.remove(*secret);
            }
        }
        value.serialize(serializer)
    }
}

/// One record, `200` with its `ETag`.
pub fn one<E: Entity>(record: &E) -> Result<One<E>, ApiError> {
    Success::new(Public(record), None, Some(etag(record.meta().version)))
}

/// A new record, `201` with its `ETag`.
pub fn created<E: Entity>(record: &E) -> Result<Created<E>, ApiError> {
    Success::new(Public(record), None, Some(etag(record.meta().version)))
}

/// A new record presented with more than its own fields (`T`), `201` with the record's
/// `ETag`.
pub fn created_as<T: Serialize>(data: &T, version: u64) -> Result<Created<T>, ApiError> {
    Success::new(data, None, Some(etag(version)))
}

/// A record presented with more than its own fields (`T`), `200` with the record's
/// `ETag`.
pub fn one_as<T: Serialize>(data: &T, version: u64) -> Result<One<T>, ApiError> {
    Success::new(data, None, Some(etag(version)))
}

/// A result that is not one record.
pub fn done<T: Serialize>(result: &T) -> Result<Done<T>, ApiError> {
    Success::new(result, None, None)
}

/// A result described in the spec as `T` and written from `data`, which serializes as
/// `T` would (the core's value behind a schema-only mirror).
pub fn done_as<T, D: Serialize>(data: &D) -> Result<Done<T>, ApiError> {
    Success::new(data, None, None)
}

/// A page of records with its pagination.
pub fn page<E: Entity>(found: Page<E>, asked: &PageRequest) -> Result<Listed<E>, ApiError> {
    let pagination = Pagination {
        next_cursor: found.next.as_ref().map(|c| c.encode()),
        limit: asked.limit.unwrap_or(PageRequest::DEFAULT_LIMIT) as u64,
        total: found.total,
    };
    let items: Vec<Public<'_, E>> = found.items.iter().map(Public).collect();
    Success::new(items, Some(&pagination), None)
}
