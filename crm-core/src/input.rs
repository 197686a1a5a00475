//! How service inputs read from text formats: absent, `null` and set are three different
//! things in a patch, and lists of statuses in a query string are comma-separated.

use std::{fmt, marker::PhantomData, str::FromStr};

use serde::{Deserialize, Deserializer, de};

/// For `Option<Option<T>>` patch fields: a missing field stays `None` (through
/// `#[serde(default)]`), `null` becomes `Some(None)` (clear), a value `Some(Some(v))`.
pub(crate) fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// For list filters: `new,contacted` (a query string) or `["new", "contacted"]`.
pub(crate) fn comma_list<'de, T, D>(d: D) -> Result<Vec<T>, D::Error>
where
    T: FromStr,
    T::Err: fmt::Display,
    D: Deserializer<'de>,
{
    struct ListVisitor<T>(PhantomData<T>);
    impl<'de, T: FromStr> de::Visitor<'de> for ListVisitor<T>
    where
        T::Err: fmt::Display,
    {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a comma-separated list or an array of names")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().map_err(E::custom)).collect()
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s.parse().map_err(de::Error::custom)?);
            }
            Ok(out)
        }
    }
    d.deserialize_any(ListVisitor(PhantomData))
}
