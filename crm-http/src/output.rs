//! Writing responses: the one success envelope (`success`, `data`, `pagination`),
//! records without their secret fields, and their versions as `ETag`s.

use crm_core::{Page, PageRequest, entity::Entity};
use poem_openapi::{ApiResponse, Object, payload::Json};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

/// Where the next page starts, and how big pages are.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
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

/// The envelope of every successful response.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct Envelope {
    /// Always `true`.
    pub success: bool,
    /// The record, the list of records, or the result of an action.
    pub data: Value,
    /// Paging of a listing.
    #[oai(skip_serializing_if_is_none)]
    pub pagination: Option<Pagination>,
}

/// A successful read, change or action.
#[derive(Debug, ApiResponse)]
pub enum Fetched {
    /// The result, with the record's version as its `ETag` when it is one record.
    #[oai(status = 200)]
    Ok(Json<Envelope>, #[oai(header = "ETag")] Option<String>),
}

/// A record was created.
#[derive(Debug, ApiResponse)]
pub enum Created {
    /// The new record, with its version as its `ETag`.
    #[oai(status = 201)]
    Created(Json<Envelope>, #[oai(header = "ETag")] Option<String>),
}

/// The `ETag` of a version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// A record as JSON without the fields the core declares secret (password and key
/// hashes), plus its version.
pub fn record_json<E: Entity>(record: &E) -> Result<(Value, u64), ApiError> {
    let mut value = serde_json::to_value(record).map_err(|e| ApiError::internal(&e))?;
    if let Value::Object(map) = &mut value {
        for secret in E::SECRET_FIELDS {
            map.remove(*secret);
        }
    }
    Ok((value, record.meta().version))
}

/// Any serializable result (reports, counts, composite results).
pub fn value<T: Serialize>(result: &T) -> Result<Value, ApiError> {
    serde_json::to_value(result).map_err(|e| ApiError::internal(&e))
}

fn wrap(data: Value) -> Json<Envelope> {
    Json(Envelope { success: true, data, pagination: None })
}

/// One record, `200` with its `ETag`.
pub fn one<E: Entity>(record: &E) -> Result<Fetched, ApiError> {
    let (data, version) = record_json(record)?;
    Ok(Fetched::Ok(wrap(data), Some(etag(version))))
}

/// A new record, `201` with its `ETag`.
pub fn created<E: Entity>(record: &E) -> Result<Created, ApiError> {
    let (data, version) = record_json(record)?;
    Ok(Created::Created(wrap(data), Some(etag(version))))
}

/// A new record already presented as JSON (with extra members), `201` with its `ETag`.
pub fn created_value(data: Value, version: u64) -> Created {
    Created::Created(wrap(data), Some(etag(version)))
}

/// A result that is not one record.
pub fn data(data: Value) -> Fetched {
    Fetched::Ok(wrap(data), None)
}

/// A page of records with its pagination.
pub fn page<E: Entity>(found: Page<E>, asked: &PageRequest) -> Result<Fetched, ApiError> {
    let items = found.items.iter().map(|r| record_json(r).map(|(v, _)| v)).collect::<Result<Vec<_>, _>>()?;
    let pagination = Pagination {
        next_cursor: found.next.as_ref().map(|c| c.encode()),
        limit: asked.limit.unwrap_or(PageRequest::DEFAULT_LIMIT) as u64,
        total: found.total,
    };
    Ok(Fetched::Ok(Json(Envelope { success: true, data: Value::Array(items), pagination: Some(pagination) }), None))
}
