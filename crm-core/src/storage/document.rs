//! [`Document`]: a record's JSON, kept as its compact text.
//!
//! Records are written once and read many times. Keeping the text (instead of a
//! `serde_json::Value` tree) lets a read decode an entity straight from what the adapter
//! stored, and keeps a record in memory at the size of its JSON.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};
use serde_json::value::RawValue;

/// A record's document: valid, compact JSON text, shared without copying.
///
/// It serializes as the JSON it holds (not as a string), so a document embedded in a
/// larger JSON value reads back as itself.
#[derive(Clone)]
pub struct Document(Arc<RawValue>);

impl Document {
    /// The document of a serializable value.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(|raw| Self(raw.into()))
    }

    /// A document from JSON text read back from storage; fails unless it is JSON.
    /// The text is kept as given (an adapter hands back what it stored).
    pub fn from_json(text: impl Into<String>) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text.into()).map(|raw| Self(raw.into()))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Decodes the document into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The JSON `null`.
    pub fn null() -> Self {
        Self(RawValue::NULL.to_owned().into())
    }

    /// The document as a JSON tree (for code that inspects arbitrary fields).
    pub fn to_value(&self) -> serde_json::Value {
        // Valid JSON by construction, so this cannot fail; `Null` keeps it total anyway.
        self.decode().unwrap_or(serde_json::Value::Null)
    }
}

impl From<&serde_json::Value> for Document {
    fn from(value: &serde_json::Value) -> Self {
        // Serializing a `Value` cannot fail (its map keys are strings).
        Self::encode(value).unwrap_or_else(|_| Self::null())
    }
}

impl From<serde_json::Value> for Document {
    fn from(value: serde_json::Value) -> Self {
        Self::from(&value)
    }
}

impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Document {}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(|raw| Self(raw.into()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keeps_the_compact_text_and_reads_back() {
        let value = json!({ "name": "Ada", "tags": ["a", "b"], "n": 1.5 });
        let doc = Document::from(&value);
        assert_eq!(doc.as_str(), r#"{"n":1.5,"name":"Ada","tags":["a","b"]}"#);
        assert_eq!(doc.to_value(), value);
        assert_eq!(Document::encode(&value).expect("test value"), doc);
    }

    #[test]
    fn refuses_text_that_is_not_json() {
        assert!(Document::from_json("{\"a\":").is_err());
        assert!(Document::from_json("nope").is_err());
        assert!(Document::from_json("{\"a\":1} trailing").is_err());
        assert_eq!(Document::from_json(" {\"a\" : 1} ").expect("test value").to_value(), json!({ "a": 1 }));
        assert_eq!(Document::null().to_value(), serde_json::Value::Null);
    }

    #[test]
    fn embeds_as_json_not_as_a_string() {
        let doc = Document::from(json!({ "a": [1, 2] }));
        let outer = serde_json::to_string(&json!({ "data": serde_json::to_value(&doc).expect("test value") }))
            .expect("test value");
        assert_eq!(outer, r#"{"data":{"a":[1,2]}}"#);
        let back: Document = serde_json::from_str(r#"{"a":[1,2]}"#).expect("test value");
        assert_eq!(back, doc);
    }
}
