//! Reading requests: JSON bodies into the core's input types (every refused field
//! named, money never through a float), query strings into the core's list filters,
//! paging parameters, and versions from `If-Match`.

use crm_core::PageRequest;
use poem::Request;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Query parameters that page a listing rather than filter it.
const PAGING_PARAMS: [&str; 5] = ["limit", "cursor", "sort", "search", "total"];

/// Refuses JSON numbers with a fraction or exponent anywhere in `value`: amounts, prices
/// and quantities travel as decimal strings (`"1234.50"`), and such numbers have
/// already been through a float. Integers are exact and stay accepted.
fn refuse_inexact_numbers(value: &Value, path: &mut String) -> Result<(), ApiError> {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => Err(ApiError::invalid(
            if path.is_empty() { "body" } else { path.as_str() },
            "decimal values must be sent as strings such as \"1234.50\", not JSON numbers",
        )),
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let result = refuse_inexact_numbers(item, path);
            path.truncate(len);
            result
        }),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let result = refuse_inexact_numbers(item, path);
            path.truncate(len);
            result
        }),
        _ => Ok(()),
    }
}

/// The field a deserialization error is about: its path, or the unknown/missing
/// field named in the message when the error is at the top level.
fn error_field(path: &str, message: &str) -> String {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|p| message.split_once(p).and_then(|(_, rest)| rest.split_once('`')).map(|(f, _)| f));
    match (path, named) {
        ("." | "", Some(field)) => field.to_owned(),
        ("." | "", None) => "body".to_owned(),
        (path, Some(field)) if message.starts_with("missing field") => format!("{path}.{field}"),
        (path, _) => path.to_owned(),
    }
}

/// Reads a JSON body into a core input type.
pub fn decode<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    refuse_inexact_numbers(&body, &mut String::new())?;
    serde_path_to_error::deserialize(body).map_err(|e| {
        let message = e.inner().to_string();
        ApiError::invalid(error_field(&e.path().to_string(), &message), message)
    })
}

/// Whether a write must name the version it read (`If-Match` or a body `version`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Versions {
    /// A write without a version applies to whatever is stored (simple clients).
    #[default]
    Optional,
    /// A write without a version is refused with 428 (`--require-if-match`), so no
    /// client overwrites a change it has not seen.
    Required,
}

impl Versions {
    /// 428 when versions are required and none was sent.
    fn demand(self, sent: bool) -> Result<(), ApiError> {
        match self {
            Self::Required if !sent => Err(ApiError::precondition_required()),
            _ => Ok(()),
        }
    }
}

/// Reads a patch body, taking its `version` from `If-Match` when the header is sent.
pub fn decode_patch<T: DeserializeOwned>(
    mut body: Value,
    if_match: Option<&str>,
    versions: Versions,
) -> Result<T, ApiError> {
    let in_body = body.get("version").is_some_and(|v| !v.is_null());
    versions.demand(if_match.is_some() || in_body)?;
    if let Some(version) = version_from_if_match(if_match)? {
        let Value::Object(map) = &mut body else {
            return Err(ApiError::invalid("body", "must be a JSON object"));
        };
        match map.get("version") {
            Some(sent) if sent.as_u64() != Some(version) => {
                return Err(ApiError::invalid("version", "disagrees with the If-Match header"));
            }
            _ => {
                map.insert("version".into(), version.into());
            }
        }
    }
    decode(body)
}

/// The version an `If-Match` header names (`"3"`, `W/"3"` or `3`); none when absent.
pub fn version_from_if_match(if_match: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(raw) = if_match else { return Ok(None) };
    let tag = raw.trim().trim_start_matches("W/").trim_matches('"');
    tag.parse::<u64>().map(Some).map_err(|_| ApiError::invalid("If-Match", "must be the ETag of a read, such as \"3\""))
}

/// The version a body-less write names in `If-Match`: 428 without one when versions
/// are required.
pub fn required_version(if_match: Option<&str>, versions: Versions) -> Result<Option<u64>, ApiError> {
    versions.demand(if_match.is_some())?;
    version_from_if_match(if_match)
}

/// Reads a listing's filters from the query string (paging parameters aside).
pub fn filter_from_query<F: DeserializeOwned>(req: &Request) -> Result<F, ApiError> {
    let query = req.uri().query().unwrap_or("");
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
    let filters: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| !PAGING_PARAMS.contains(&k.as_str())).collect();
    let encoded =
        serde_urlencoded::to_string(&filters).map_err(|e| ApiError::bad_request(format!("malformed query: {e}")))?;
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let message = e.inner().to_string();
        ApiError::invalid(error_field(&e.path().to_string(), &message), message)
    })
}

/// `sort=-name` sorts descending by `name`.
pub fn page_request(
    limit: Option<u32>,
    cursor: Option<String>,
    sort: Option<String>,
    search: Option<String>,
    total: Option<bool>,
) -> PageRequest {
    let (sort, descending) = match sort {
        Some(s) => match s.strip_prefix('-') {
            Some(field) => (Some(field.to_owned()), true),
            None => (Some(s), false),
        },
        None => (None, false),
    };
    PageRequest {
        cursor,
        limit: limit.map(|l| l as usize),
        sort,
        descending,
        search,
        with_total: total.unwrap_or(false),
    }
}
