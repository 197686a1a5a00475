//! PostgreSQL's binary `COPY` format, for `COPY … FROM STDIN (FORMAT binary)`.
//!
//! The stream is the 11-byte signature `PGCOPY\n\377\r\n\0`, a 32-bit flags field (0:
//! no OIDs) and a 32-bit header extension length (0); then one tuple per row: a 16-bit
//! field count, and per field a 32-bit length (-1 for `NULL`) followed by that many
//! bytes of the type's binary representation; then the trailer, a 16-bit -1. Every
//! integer is big-endian.
//!
//! A field's bytes are what the type's binary send function produces, which is also
//! what sqlx's binary parameter encoding produces: values are encoded with sqlx's
//! `Encode` (uuid, int8, text, numeric, date, timestamptz, bool), so there is one
//! encoder of each type in the process. A `jsonb` field is the version byte 1 and the
//! JSON text.

use crm_core::storage::{Record, StorageError};
use sqlx::{Encode, Postgres, encode::IsNull, postgres::PgArgumentBuffer};

use crate::values::Typed;

/// The signature, flags and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Rows in PostgreSQL's binary `COPY` format, built in memory and taken in pieces.
pub(super) struct BinaryRows {
    buf: PgArgumentBuffer,
    fields: i16,
}

impl BinaryRows {
    /// A stream of rows of `fields` fields each, starting with the header.
    pub(super) fn new(fields: usize) -> Result<Self, StorageError> {
        let fields = i16::try_from(fields)
            .map_err(|_| StorageError::Invalid(format!("{fields} columns are more than COPY takes")))?;
        let mut buf = PgArgumentBuffer::default();
        buf.extend_from_slice(HEADER);
        Ok(Self { buf, fields })
    }

    /// Starts a row: its field count. Exactly that many fields must follow.
    pub(super) fn row(&mut self) {
        self.buf.extend_from_slice(&self.fields.to_be_bytes());
    }

    /// A field encoded as sqlx binds it (`None` is `NULL`).
    pub(super) fn field<T: for<'q> Encode<'q, Postgres>>(&mut self, value: &T) -> Result<(), StorageError> {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        let encoded =
            value.encode_by_ref(&mut self.buf).map_err(|e| StorageError::Invalid(format!("COPY field: {e}")))?;
        let len = match encoded {
            IsNull::Yes => {
                self.buf.truncate(at + 4);
                -1
            }
            IsNull::No => i32::try_from(self.buf.len() - at - 4)
                .map_err(|_| StorageError::Invalid("a COPY field is larger than 2 GiB".into()))?,
        };
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// An indexed value in its column's type.
    pub(super) fn typed(&mut self, value: &Typed) -> Result<(), StorageError> {
        match value {
            Typed::Bool(v) => self.field(v),
            Typed::Int(v) => self.field(v),
            Typed::Decimal(v) => self.field(v),
            Typed::Text(v) => self.field(v),
            Typed::Uuid(v) => self.field(v),
            Typed::Date(v) => self.field(v),
            Typed::Timestamp(v) => self.field(v),
        }
    }

    /// A record's document as `jsonb`: the version byte 1, then the JSON text.
    pub(super) fn document(&mut self, record: &Record) -> Result<(), StorageError> {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.push(1);
        self.buf.extend_from_slice(record.data.as_str().as_bytes());
        let len = i32::try_from(self.buf.len() - at - 4)
            .map_err(|_| StorageError::Invalid(format!("{} {}: document larger than 2 GiB", record.kind, record.id)))?;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// How many bytes are waiting to be taken.
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Takes the bytes written so far (the stream goes on where they end).
    pub(super) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.buf)
    }

    /// Ends the stream with its trailer; returns the last bytes.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.take()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};
    use rust_decimal::Decimal;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn the_stream_has_the_documented_layout() {
        let mut rows = BinaryRows::new(3).unwrap_or_else(|e| unreachable!("{e}"));
        rows.row();
        let id = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        assert!(rows.field(&id).is_ok());
        assert!(rows.field(&Some(7i64)).is_ok());
        assert!(rows.field(&None::<String>).is_ok());
        let bytes = rows.finish();
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, extension length
        expected.extend_from_slice(&[0, 3]); // three fields
        expected.extend_from_slice(&[0, 0, 0, 16]);
        expected.extend_from_slice(id.as_bytes());
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // NULL
        expected.extend_from_slice(&[0xff, 0xff]); // trailer
        assert_eq!(bytes, expected);
    }

    #[test]
    fn dates_times_and_decimals_are_postgres_binary() {
        let mut rows = BinaryRows::new(3).unwrap_or_else(|e| unreachable!("{e}"));
        let header = rows.take().len();
        assert_eq!(header, 19);
        // Days and microseconds since 2000-01-01.
        let date = NaiveDate::from_ymd_opt(2000, 1, 2);
        assert!(rows.typed(&Typed::Date(date)).is_ok());
        assert_eq!(rows.take(), [0, 0, 0, 4, 0, 0, 0, 1]);
        let at = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 1).single();
        assert!(rows.typed(&Typed::Timestamp(at)).is_ok());
        assert_eq!(rows.take(), [0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]);
        // 12.5: two base-10000 digits (12, 5000), weight 0, positive, scale 1.
        assert!(rows.typed(&Typed::Decimal(Some(Decimal::new(125, 1)))).is_ok());
        assert_eq!(rows.take(), [0, 0, 0, 12, 0, 2, 0, 0, 0, 0, 0, 1, 0, 12, 0x13, 0x88]);
    }
}
