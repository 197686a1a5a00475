//! Each entity's indexed fields, declared once: name, value type, and what a listing
//! may do with the field (filter on it, sort by it, search it, keep it unique). The
//! storage index, the sortable and searchable lists, the unique keys, the PostgreSQL
//! columns and the HTTP filter parameters with their documentation all come from
//! these declarations (`indexed_fields!` in an entity's `impl Entity`).

use crate::storage::FieldValue;

/// The type of an indexed field's values, as the storage keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `true` or `false`.
    Bool,
    /// A whole number.
    Int,
    /// An exact decimal (money, quantities).
    Decimal,
    /// Text, compared by code point.
    Text,
    /// A UUID: a record's id.
    Uuid,
    /// A calendar date.
    Date,
    /// An instant (UTC).
    Timestamp,
}

impl FieldType {
    /// Whether `value` is a value of this type (absent values are of every type).
    pub fn admits(self, value: &FieldValue) -> bool {
        matches!(
            (self, value),
            (_, FieldValue::Null)
                | (Self::Bool, FieldValue::Bool(_))
                | (Self::Int, FieldValue::Int(_))
                | (Self::Decimal, FieldValue::Decimal(_))
                | (Self::Text, FieldValue::Text(_))
                | (Self::Uuid, FieldValue::Uuid(_))
                | (Self::Date, FieldValue::Date(_))
                | (Self::Timestamp, FieldValue::Timestamp(_))
        )
    }

    /// How a caller writes a value of this type in a query string.
    pub const fn query_form(self) -> &'static str {
        match self {
            Self::Bool => "`true` or `false`",
            Self::Int => "a whole number",
            Self::Decimal => "a decimal number",
            Self::Text => "text",
            Self::Uuid => "a UUID",
            Self::Date => "a date, YYYY-MM-DD",
            Self::Timestamp => "an RFC 3339 instant",
        }
    }
}

/// How a listing filters on a field, and the query parameter(s) naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterOn {
    /// `field = value`, under the field's own name.
    Eq,
    /// `field` is one of the comma-separated values of the parameter.
    AnyOf(&'static str),
    /// `from <= field < to`, each bound its own parameter.
    Range(&'static str, &'static str),
    /// `field >= value`.
    AtLeast(&'static str),
    /// A yes/no parameter that compares the field with today (`overdue`).
    Passed(&'static str),
}

/// One indexed field of an entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The name, in records, filters, sorts and storage columns.
    pub name: &'static str,
    /// The value type.
    pub ty: FieldType,
    /// How listings may filter on it (at most two ways; unused slots are `None`).
    pub filters: [Option<FilterOn>; 2],
    /// Listings may sort by it.
    pub sortable: bool,
    /// The listing's text `search` looks into it.
    pub searchable: bool,
    /// No two records of a tenant share a (non-null) value.
    pub unique: bool,
}

impl Field {
    /// A field that is only indexed.
    pub const fn new(name: &'static str, ty: FieldType) -> Self {
        Self { name, ty, filters: [None, None], sortable: false, searchable: false, unique: false }
    }
    /// Sortable.
    pub const fn sort(self) -> Self {
        Self { sortable: true, ..self }
    }
    /// Searchable.
    pub const fn search(self) -> Self {
        Self { searchable: true, ..self }
    }
    /// Unique per tenant.
    pub const fn unique(self) -> Self {
        Self { unique: true, ..self }
    }
    /// Adds a way to filter on the field.
    const fn filter(self, how: FilterOn) -> Self {
        let mut filters = self.filters;
        if filters[0].is_none() {
            filters[0] = Some(how);
        } else {
            filters[1] = Some(how);
        }
        Self { filters, ..self }
    }
    /// Filterable by equality under its own name.
    pub const fn eq(self) -> Self {
        self.filter(FilterOn::Eq)
    }
    /// Filterable by a list of values.
    pub const fn any(self, param: &'static str) -> Self {
        self.filter(FilterOn::AnyOf(param))
    }
    /// Filterable by a range.
    pub const fn range(self, from: &'static str, to: &'static str) -> Self {
        self.filter(FilterOn::Range(from, to))
    }
    /// Filterable by a lower bound.
    pub const fn min(self, param: &'static str) -> Self {
        self.filter(FilterOn::AtLeast(param))
    }
    /// Filterable by whether it lies before today.
    pub const fn passed(self, param: &'static str) -> Self {
        self.filter(FilterOn::Passed(param))
    }

    /// The query parameters that filter on this field, each with its documentation.
    pub fn filter_params(&self) -> Vec<(&'static str, String)> {
        let (name, form) = (self.name, self.ty.query_form());
        let mut params = Vec::new();
        for how in self.filters.iter().flatten() {
            match *how {
                FilterOn::Eq => params.push((name, format!("Only records whose `{name}` equals this ({form})."))),
                FilterOn::AnyOf(param) => params.push((
                    param,
                    format!("Only records whose `{name}` is one of these (comma-separated, each {form})."),
                )),
                FilterOn::Range(from, to) => {
                    params.push((from, format!("Only records whose `{name}` is at or after this ({form}).")));
                    params.push((to, format!("Only records whose `{name}` is before this ({form}).")));
                }
                FilterOn::AtLeast(param) => {
                    params.push((param, format!("Only records whose `{name}` is at least this ({form}).")))
                }
                FilterOn::Passed(param) => {
                    params.push((param, format!("`true`: only records whose `{name}` is before today.")))
                }
            }
        }
        params
    }
}

/// The query parameters of a listing of records with these fields, documented.
pub fn filter_params(fields: &[Field]) -> Vec<(&'static str, String)> {
    fields.iter().flat_map(Field::filter_params).collect()
}

/// The fields a listing may sort by.
pub fn sortable(fields: &[Field]) -> impl Iterator<Item = &'static str> + '_ {
    fields.iter().filter(|f| f.sortable).map(|f| f.name)
}

/// The `(filter, sort)` pairs a listing serves from one sorted index walk: each
/// equality filter on a field that is not unique (a unique field's equality finds one
/// record at most: nothing to sort), with each other field listings sort by. Adapters
/// keep an index per pair, so a filtered and sorted page costs what the default order
/// does.
pub fn filtered_sorts(fields: &[Field]) -> impl Iterator<Item = (&Field, &Field)> + '_ {
    let equalities = fields.iter().filter(|f| f.filters.contains(&Some(FilterOn::Eq)) && !f.unique);
    equalities.flat_map(move |filter| {
        fields.iter().filter(move |sort| sort.sortable && sort.name != filter.name).map(move |sort| (filter, sort))
    })
}

/// The fields a listing's text search looks into.
pub fn searchable(fields: &[Field]) -> Vec<&'static str> {
    fields.iter().filter(|f| f.searchable).map(|f| f.name).collect()
}

/// The fields every entity indexes, declared first in every table.
pub const CREATED_AT: Field = Field::new("created_at", FieldType::Timestamp).sort();
/// See [`CREATED_AT`].
pub const UPDATED_AT: Field = Field::new("updated_at", FieldType::Timestamp).sort();

/// Calls `get` on `entity`: lets the table's closures infer their argument's type.
#[doc(hidden)]
pub fn value_of<'a, E, V: Into<FieldValue>>(entity: &'a E, get: impl FnOnce(&'a E) -> V) -> FieldValue {
    get(entity).into()
}

/// Declares an entity's indexed fields inside its `impl Entity`: one line per field,
/// `name: Type [flags] = |entity| value`, where the flags are any of `sort`, `search`,
/// `unique`, `eq`, `any(param)`, `range(from_param, to_param)`, `min(param)` and
/// `passed(param)`. `created_at` and `updated_at` come first in every table, with
/// their own flags (`created_at [range(created_from, created_to)]`). Expands into
/// `Entity::FIELDS` and `Entity::index`.
macro_rules! indexed_fields {
    (
        created_at [$($cflag:ident $(($($carg:ident),*))?),*],
        updated_at [$($uflag:ident $(($($uarg:ident),*))?),*],
        $($name:ident: $ty:ident [$($flag:ident $(($($arg:ident),*))?),*] = $get:expr),* $(,)?
    ) => {
        const FIELDS: &'static [$crate::fields::Field] = &[
            $crate::fields::CREATED_AT $(.$cflag($($(stringify!($carg)),*)?))*,
            $crate::fields::UPDATED_AT $(.$uflag($($(stringify!($uarg)),*)?))*,
            $(
                $crate::fields::Field::new(stringify!($name), $crate::fields::FieldType::$ty)
                    $(.$flag($($(stringify!($arg)),*)?))*
            ),*
        ];

        fn index(&self, fields: &mut Vec<(&'static str, $crate::storage::FieldValue)>) {
            fields.extend([
                ("created_at", $crate::storage::FieldValue::from(self.meta().created_at)),
                ("updated_at", $crate::storage::FieldValue::from(self.meta().updated_at)),
                $((stringify!($name), $crate::fields::value_of(self, $get))),*
            ]);
        }
    };
}
pub(crate) use indexed_fields;
