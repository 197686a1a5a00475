//! Explicit state machines: every status enum lists its allowed transitions, and one
//! function refuses the rest with an error naming both states.

use crate::{
    error::{CrmError, Result},
    storage::EntityKind,
};

/// A status with an explicit transition table.
pub trait StateMachine: Copy + Eq + 'static {
    /// The kind of record whose status this is (for error messages).
    const KIND: EntityKind;
    /// The status's snake_case name.
    fn as_str(self) -> &'static str;
    /// The statuses reachable in one step.
    fn next(self) -> &'static [Self];

    /// Whether `self → to` is allowed.
    fn can_become(self, to: Self) -> bool {
        self.next().contains(&to)
    }

    /// `to` if the transition is allowed, else [`CrmError::InvalidTransition`].
    fn transition(self, to: Self) -> Result<Self> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(CrmError::InvalidTransition { kind: Self::KIND, from: self.as_str().into(), to: to.as_str().into() })
        }
    }
}

/// Declares a snake_case enum stored and shown as text: serde, `as_str`, `Display`,
/// `FromStr`, `ALL`, and conversion to an indexed [`crate::storage::FieldValue`].
macro_rules! text_enum {
    (
        $(#[$attr:meta])*
        $name:ident { $( $(#[$vattr:meta])* $variant:ident = $text:literal ),* $(,)? }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vattr])* $variant, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The snake_case name.
            pub const fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("unknown {} `{s}`", stringify!($name)))
            }
        }

        impl From<$name> for $crate::storage::FieldValue {
            fn from(v: $name) -> Self {
                $crate::storage::FieldValue::Text(v.as_str().to_owned())
            }
        }
    };
}
pub(crate) use text_enum;

/// Declares a status enum ([`text_enum!`]) with its [`StateMachine`] table.
///
/// ```ignore
/// status_enum! {
///     /// A lead's place in the funnel.
///     LeadStatus for Lead {
///         /// Not yet contacted.
///         New = "new" => [Contacted, Unqualified],
///         Contacted = "contacted" => [],
///     }
/// }
/// ```
macro_rules! status_enum {
    (
        $(#[$attr:meta])*
        $name:ident for $kind:ident {
            $( $(#[$vattr:meta])* $variant:ident = $text:literal => [$($next:ident),* $(,)?] ),* $(,)?
        }
    ) => {
        $crate::state::text_enum! {
            $(#[$attr])*
            $name { $( $(#[$vattr])* $variant = $text ),* }
        }

        impl $crate::state::StateMachine for $name {
            const KIND: $crate::storage::EntityKind = $crate::storage::EntityKind::$kind;
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
            fn next(self) -> &'static [Self] {
                match self { $( $name::$variant => &[$($name::$next),*], )* }
            }
        }
    };
}
pub(crate) use status_enum;
