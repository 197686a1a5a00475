//! The email job: what the core hands to the sender (crm-jobs) on the [`EMAILS`]
//! queue. The core decides every message (recipient, subject, both bodies); the sender
//! only transmits. Its own kernel module so that every area can compose one (the
//! password reset in `access`, the event emails in `emails`) without importing a
//! higher layer.
//!
//! A message's bodies may carry secrets (a reset link), so its `Debug` shows the
//! recipient and subject only, and so should every log line about it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    error::{CrmError, Result},
    jobs::{Job, NewJob, RetryPolicy},
};

/// The queue emails wait on.
pub const EMAILS: &str = "emails";

/// One message to one recipient, plain text and HTML alternatives of the same content.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// The recipient's address.
    pub to: String,
    /// One line, no markup.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body; every value in it went through [`escape_html`].
    pub html: String,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email").field("to", &self.to).field("subject", &self.subject).finish_non_exhaustive()
    }
}

impl Email {
    /// The job that sends it: on [`EMAILS`], retried by [`RetryPolicy::EMAILS`].
    pub fn job(&self) -> Result<NewJob> {
        let payload = serde_json::to_value(self).map_err(|e| CrmError::Internal(format!("email payload: {e}")))?;
        Ok(NewJob::new(EMAILS, payload).retry(RetryPolicy::EMAILS))
    }

    /// The email a job of [`EMAILS`] carries.
    pub fn of_job(job: &Job) -> Result<Self> {
        serde_json::from_value(job.payload.clone())
            .map_err(|e| CrmError::Internal(format!("job {} is no email: {e}", job.id)))
    }

    /// A message whose HTML body is the text's paragraphs, escaped: for messages
    /// without a table.
    pub fn plain(to: impl Into<String>, subject: impl Into<String>, paragraphs: &[String]) -> Self {
        let html = paragraphs.iter().map(|p| format!("<p>{}</p>", escape_html(p))).collect::<Vec<_>>().join("\n");
        Self { to: to.into(), subject: subject.into(), text: paragraphs.join("\n\n"), html }
    }
}

/// `text` safe inside HTML elements and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
