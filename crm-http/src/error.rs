//! The one place where errors become HTTP statuses: domain errors ([`CrmError`]),
//! the framework's own refusals (parse errors, unknown routes, oversized bodies) and
//! rate limits. Each mapping has a test in `tests/it/errors.rs`.

use crm_core::CrmError;
use poem::{IntoResponse, http::StatusCode};
use poem_openapi::{
    ApiResponse, Object,
    payload::Json,
    registry::{MetaResponses, Registry},
};

use crate::request;

/// One refused input field.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct FieldDetail {
    /// The field as the client sent it (`lines[2].unit_price`, `If-Match`, `limit`).
    pub field: String,
    /// Why it was refused.
    pub message: String,
}

/// What went wrong, in the envelope's `error` member.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct ErrorBody {
    /// A stable machine-readable code (`validation_failed`, `not_found`, …).
    pub code: String,
    /// A human-readable message; never internal details.
    pub message: String,
    /// Per-field details of validation errors (empty otherwise).
    pub details: Vec<FieldDetail>,
    /// The request id, to quote when reporting a problem.
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
}

/// The envelope of every error response: `{ "success": false, "error": { … } }`.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    /// The error.
    pub error: ErrorBody,
}

/// Every error status the API answers, each with the same envelope.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Malformed request: bad JSON, a wrong type, a bad UUID in the path.
    #[oai(status = 400)]
    BadRequest(Json<ErrorEnvelope>),
    /// Missing, expired or invalid credentials.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorEnvelope>),
    /// Authenticated, but the role, ownership or API-key scope does not allow it.
    #[oai(status = 403)]
    Forbidden(Json<ErrorEnvelope>),
    /// No such record (including records of other tenants) or route.
    #[oai(status = 404)]
    NotFound(Json<ErrorEnvelope>),
    /// The route exists, the method does not.
    #[oai(status = 405)]
    MethodNotAllowed(Json<ErrorEnvelope>),
    /// Stale version, a duplicate, a refused state transition, or a record still in use.
    #[oai(status = 409)]
    Conflict(Json<ErrorEnvelope>),
    /// The body is larger than the server accepts.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorEnvelope>),
    /// The body is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorEnvelope>),
    /// The input was understood but refused; every bad field is listed.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorEnvelope>),
    /// The server requires writes to name the version they read (`--require-if-match`):
    /// send `If-Match` with the record's `ETag`.
    #[oai(status = 428)]
    PreconditionRequired(Json<ErrorEnvelope>),
    /// Too many requests; retry after the given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorEnvelope>, #[oai(header = "Retry-After")] u64),
    /// An unexpected failure; the body carries only the request id.
    #[oai(status = 500)]
    Internal(Json<ErrorEnvelope>),
    /// The storage is unreachable right now; retry after the given number of seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorEnvelope>, #[oai(header = "Retry-After")] u64),
}

/// The `Retry-After` of a 503: long enough for a pool to reconnect after a restart or
/// a fail-over, short enough that clients come back soon.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

fn envelope(code: &str, message: impl Into<String>, details: Vec<FieldDetail>) -> Json<ErrorEnvelope> {
    Json(ErrorEnvelope {
        success: false,
        error: ErrorBody {
            code: code.into(),
            message: message.into(),
            details,
            request_id: request::current_request_id(),
        },
    })
}

impl ApiError {
    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(envelope("bad_request", message, Vec::new()))
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::Unauthorized(envelope("unauthenticated", "authentication required or invalid", Vec::new()))
    }

    /// 403 with its own code (a refusal that is not the permission matrix's).
    pub fn forbidden(code: &str, message: impl Into<String>) -> Self {
        Self::Forbidden(envelope(code, message, Vec::new()))
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(envelope("not_found", message, Vec::new()))
    }

    /// 422 naming one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let detail = FieldDetail { field: field.into(), message: message.into() };
        Self::Unprocessable(envelope(
            "validation_failed",
            format!("{}: {}", detail.field, detail.message),
            vec![detail],
        ))
    }

    /// 428: a write that names no version where versions are required.
    pub fn precondition_required() -> Self {
        let detail = FieldDetail {
            field: "If-Match".into(),
            message: "is required: send the ETag of the record as read (or its `version` in the body)".into(),
        };
        Self::PreconditionRequired(envelope(
            "precondition_required",
            "this server requires If-Match on updates, deletes and state changes",
            vec![detail],
        ))
    }

    /// 429 with the seconds to wait.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self::TooManyRequests(envelope("rate_limited", "too many requests", Vec::new()), retry_after_secs.max(1))
    }

    /// 503: the storage did not answer in time (or refused); worth retrying shortly.
    pub fn unavailable() -> Self {
        let message = "the storage is unavailable; retry later";
        Self::Unavailable(envelope("unavailable", message, Vec::new()), UNAVAILABLE_RETRY_AFTER_SECS)
    }

    /// 500, logging the cause under the request id; the client sees neither.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(request_id = request::current_request_id().as_deref(), error = %cause, "internal error");
        Self::Internal(envelope("internal", "internal error; quote the request id when reporting it", Vec::new()))
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            Self::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The envelope of this error.
    pub fn body(&self) -> &ErrorEnvelope {
        match self {
            Self::BadRequest(b)
            | Self::Unauthorized(b)
            | Self::Forbidden(b)
            | Self::NotFound(b)
            | Self::MethodNotAllowed(b)
            | Self::Conflict(b)
            | Self::PayloadTooLarge(b)
            | Self::UnsupportedMediaType(b)
            | Self::Unprocessable(b)
            | Self::PreconditionRequired(b)
            | Self::TooManyRequests(b, _)
            | Self::Internal(b)
            | Self::Unavailable(b, _) => &b.0,
        }
    }

    /// The envelope for an error the framework raised before a handler ran (a body
    /// that is not JSON or has a wrong type, a bad path parameter, an unknown route…).
    pub fn from_framework(err: &poem::Error) -> Self {
        let message = err.to_string();
        match err.status() {
            StatusCode::NOT_FOUND => Self::NotFound(envelope("not_found", "no such endpoint", Vec::new())),
            StatusCode::METHOD_NOT_ALLOWED => {
                Self::MethodNotAllowed(envelope("method_not_allowed", "method not allowed here", Vec::new()))
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge(envelope("payload_too_large", "the request body is too large", Vec::new()))
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::UnsupportedMediaType(envelope("unsupported_media_type", message, Vec::new()))
            }
            StatusCode::UNAUTHORIZED => Self::unauthorized(),
            StatusCode::TOO_MANY_REQUESTS => Self::too_many_requests(1),
            status if status.is_client_error() => Self::bad_request(message),
            _ => Self::internal(&message),
        }
    }
}

impl From<CrmError> for ApiError {
    fn from(e: CrmError) -> Self {
        match e {
            CrmError::Validation(errors) => {
                let details: Vec<FieldDetail> = errors
                    .fields
                    .iter()
                    .map(|f| FieldDetail { field: f.field.clone(), message: f.message.clone() })
                    .collect();
                Self::Unprocessable(envelope("validation_failed", errors.to_string(), details))
            }
            e @ CrmError::NotFound { .. } => Self::NotFound(envelope("not_found", e.to_string(), Vec::new())),
            e @ CrmError::Forbidden(_) => Self::Forbidden(envelope("forbidden", e.to_string(), Vec::new())),
            CrmError::Unauthenticated => Self::unauthorized(),
            e @ CrmError::Conflict { .. } => Self::Conflict(envelope("version_conflict", e.to_string(), Vec::new())),
            e @ CrmError::InvalidTransition { .. } => {
                Self::Conflict(envelope("invalid_transition", e.to_string(), Vec::new()))
            }
            CrmError::AlreadyExists { kind, field } => {
                let detail = FieldDetail { field: field.clone(), message: "is already taken".into() };
                let message = format!("a {kind} with this {field} already exists");
                Self::Conflict(envelope("already_exists", message, vec![detail]))
            }
            e @ CrmError::Referenced { .. } => Self::Conflict(envelope("still_referenced", e.to_string(), Vec::new())),
            CrmError::Unavailable(cause) => {
                tracing::warn!(request_id = request::current_request_id().as_deref(), %cause, "storage unavailable");
                Self::unavailable()
            }
            CrmError::Internal(cause) => Self::internal(&cause),
        }
    }
}

/// Turns any error a route produced into the envelope response (used by the edge).
pub fn framework_error_response(err: poem::Error) -> poem::Response {
    if err.is_from_response() {
        // Already a complete response (an `ApiError` converted on its way out).
        err.into_response()
    } else {
        ApiError::from_framework(&err).into_response()
    }
}

/// [`ApiError`] as the spec lists it for an operation without a request body: every
/// status but 413 and 415, which only a body can cause. At run time it is the same
/// error and the same envelope.
#[derive(Debug)]
pub struct BodilessError(pub ApiError);

impl From<ApiError> for BodilessError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<CrmError> for BodilessError {
    fn from(e: CrmError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for BodilessError {
    fn into_response(self) -> poem::Response {
        self.0.into_response()
    }
}

impl From<BodilessError> for poem::Error {
    fn from(e: BodilessError) -> Self {
        e.0.into()
    }
}

impl ApiResponse for BodilessError {
    fn meta() -> MetaResponses {
        let mut meta = ApiError::meta();
        meta.responses.retain(|r| !matches!(r.status, Some(413 | 415)));
        meta
    }

    fn register(registry: &mut Registry) {
        ApiError::register(registry);
    }
}
