//! The errors every service call can return.

use std::fmt;

use serde::Serialize;

use crate::storage::{EntityKind, StorageError};

/// One invalid input field and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as the caller sent it (`lines[2].quantity` for nested input).
    pub field: String,
    /// Why the value was refused, in plain words.
    pub message: String,
}

/// Every invalid field of one request; never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValidationErrors {
    /// The refused fields, in the order they were checked.
    pub fields: Vec<FieldError>,
}

impl ValidationErrors {
    /// One error for one field.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { fields: vec![FieldError { field: field.into(), message: message.into() }] }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid input: ")?;
        for (i, e) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

/// The error of a CRM service call. Each variant is a distinct outcome the edges map
/// to their own vocabulary (an HTTP status, an exit code…).
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// The input was refused; every bad field is listed.
    #[error("{0}")]
    Validation(ValidationErrors),
    /// No such record in the caller's tenant, or one the caller may not see.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked up.
        kind: EntityKind,
        /// The id that was looked up.
        id: uuid::Uuid,
    },
    /// The caller is known but its role, ownership or scopes do not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The caller could not be authenticated (bad credentials, inactive user, revoked key).
    #[error("authentication failed")]
    Unauthenticated,
    /// The record changed since the caller read it; nothing was written.
    #[error("{kind} {id} was modified concurrently (version conflict)")]
    Conflict {
        /// The record's kind.
        kind: EntityKind,
        /// The record's id.
        id: uuid::Uuid,
    },
    /// A state machine refused a transition.
    #[error("{kind} cannot go from `{from}` to `{to}`")]
    InvalidTransition {
        /// The record's kind.
        kind: EntityKind,
        /// The current state.
        from: String,
        /// The requested state.
        to: String,
    },
    /// A unique field already holds this value in the tenant.
    #[error("a {kind} with this {field} already exists")]
    AlreadyExists {
        /// The record's kind.
        kind: EntityKind,
        /// The unique field.
        field: String,
    },
    /// The record is still referenced by others and cannot be deleted.
    #[error("{kind} {id} is still referenced by a {by}")]
    Referenced {
        /// The record that was to be deleted.
        kind: EntityKind,
        /// Its id.
        id: uuid::Uuid,
        /// The kind of a record that still points at it.
        by: EntityKind,
    },
    /// The storage cannot be reached right now; the call may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// An unexpected failure; details are for logs, not for end users.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CrmError {
    /// A validation error on one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(ValidationErrors::single(field, message))
    }

    /// Whether retrying the same call may succeed (conflicts and outages).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::Unavailable(_))
    }
}

impl From<StorageError> for CrmError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound { kind, id } => Self::NotFound { kind, id },
            StorageError::AlreadyExists { kind, field } => Self::AlreadyExists { kind, field },
            StorageError::Conflict { kind, id } => Self::Conflict { kind, id },
            StorageError::Referenced { kind, id, by } => Self::Referenced { kind, id, by },
            StorageError::MissingReference { field, kind, id } => {
                Self::invalid(field, format!("{kind} {id} does not exist"))
            }
            StorageError::Unavailable(m) => Self::Unavailable(m),
            e @ (StorageError::Invalid(_) | StorageError::Backend { .. }) => Self::Internal(e.to_string()),
        }
    }
}

/// Shorthand for results of service calls.
pub type Result<T, E = CrmError> = std::result::Result<T, E>;

/// Collects field errors so one response can name every bad field.
#[derive(Debug, Default)]
pub struct Validator {
    errors: ValidationErrors,
}

impl Validator {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error for `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) -> &mut Self {
        if !ok {
            self.push(field, message);
        }
        self
    }

    /// Records an error for `field`.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.fields.push(FieldError { field: field.into(), message: message.into() });
    }

    /// Requires a non-blank text of at most `max` characters.
    /// Text longer than [`Validator::LONG_TEXT`] characters may hold tabs and line
    /// breaks; shorter text holds no control character at all.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        if value.trim().is_empty() {
            self.push(field, "must not be empty");
        } else if value.chars().count() > max {
            self.push(field, format!("must be at most {max} characters"));
        } else {
            self.control_free(field, value, max >= Self::LONG_TEXT);
        }
        self
    }

    /// Refuses a control character in `value`; long text may hold tabs and line breaks.
    pub fn control_free(&mut self, field: &str, value: &str, long_text: bool) -> &mut Self {
        let allowed = |c: char| long_text && matches!(c, '\t' | '\n' | '\r');
        if value.chars().any(|c| c.is_control() && !allowed(c)) {
            let what = if long_text { "control characters other than tab and newline" } else { "control characters" };
            self.push(field, format!("must not contain {what}"));
        }
        self
    }

    /// The most characters of a person's first or last name (users, contacts, leads);
    /// the HTTP spec shows the same bound.
    pub const PERSON_NAME_MAX: usize = 100;

    /// The most characters of a name or title (companies, products, categories,
    /// tenants); the HTTP spec shows the same bound.
    pub const NAME_MAX: usize = 200;

    /// The most characters of a phone number (contacts, leads, companies).
    pub const PHONE_MAX: usize = 50;

    /// The most characters of a short label (a company's industry, a contact's position).
    pub const SHORT_TEXT_MAX: usize = 100;

    /// The most characters of a web address.
    pub const URL_MAX: usize = 500;

    /// The most characters of a paragraph (an address, why a deal was lost).
    pub const PARAGRAPH_MAX: usize = 1000;

    /// The most characters of notes and descriptions on documents and products.
    pub const NOTES_MAX: usize = 5000;

    /// The maximum length from which a text field counts as long text (notes,
    /// descriptions), where tabs and line breaks are allowed.
    pub const LONG_TEXT: usize = 1000;

    /// Like [`Validator::text`] for an optional value: absent is fine, present must be valid.
    pub fn opt_text(&mut self, field: &str, value: Option<&str>, max: usize) -> &mut Self {
        if let Some(v) = value {
            self.text(field, v, max);
        }
        self
    }

    /// Requires a syntactically valid email address.
    pub fn email(&mut self, field: &str, value: &str) -> &mut Self {
        if !is_valid_email(value) {
            self.push(field, "must be a valid email address");
        }
        self
    }

    /// Adds errors found elsewhere, with their field names prefixed (`lines[0].`).
    pub fn merge(&mut self, prefix: &str, other: ValidationErrors) {
        for e in other.fields {
            self.push(format!("{prefix}{}", e.field), e.message);
        }
    }

    /// The errors recorded so far.
    pub fn into_errors(self) -> ValidationErrors {
        self.errors
    }

    /// `Ok` when nothing was recorded, else every recorded error.
    pub fn finish(&mut self) -> Result<()> {
        if self.errors.fields.is_empty() { Ok(()) } else { Err(CrmError::Validation(std::mem::take(&mut self.errors))) }
    }
}

/// Email syntax per RFC 5321/5322 as implemented by the `email_address` crate, plus a
/// length limit so stored values fit any index.
pub(crate) fn is_valid_email(value: &str) -> bool {
    value.len() <= 254 && value.trim() == value && email_address::EmailAddress::is_valid(value)
}
