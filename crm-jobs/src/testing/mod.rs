//! Real servers for tests and benches (feature `testing`): a webhook receiver
//! ([`Receiver`]) and an SMTP server ([`SmtpSink`]), both on 127.0.0.1.

mod receiver;
mod smtp;

pub use receiver::{Answer, Received, Receiver};
pub use smtp::{ReceivedMail, SmtpSink};
