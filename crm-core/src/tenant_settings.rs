//! A tenant's settings: one record per tenant (its id is the tenant's), read by the
//! kernel because "today" depends on the tenant's time zone ([`crate::Crm::today`]).
//! The service that changes them is `access::settings`.

use std::{fmt, str::FromStr};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    authz::Resource,
    entity::{Entity, entity_meta},
    fields::indexed_fields,
    id::{Meta, TenantId},
    storage::EntityKind,
};

/// An IANA time zone (`Europe/Belgrade`, `UTC`), stored and shown by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    /// Coordinated Universal Time, every tenant's zone until an admin sets another.
    pub const UTC: Self = Self(chrono_tz::Tz::UTC);

    /// The IANA name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The calendar date at `instant` in this zone.
    pub fn date_at(self, instant: DateTime<Utc>) -> NaiveDate {
        instant.with_timezone(&self.0).date_naive()
    }

    /// The instant `date` begins in this zone: its midnight, or where a daylight-saving
    /// change skips midnight, the first moment of the day that exists.
    pub fn start_of(self, date: NaiveDate) -> DateTime<Utc> {
        use chrono::TimeZone as _;
        let local = date.and_time(chrono::NaiveTime::MIN);
        // Clocks move forward by at most a few hours, never across a whole day.
        (0..=6)
            .find_map(|hours| self.0.from_local_datetime(&(local + chrono::Duration::hours(hours))).earliest())
            .map_or_else(|| local.and_utc(), |start| start.with_timezone(&Utc))
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        Self::UTC
    }
}

impl FromStr for TimeZone {
    type Err = String;
    /// An exact IANA name, as the tz database spells it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<chrono_tz::Tz>().map(Self).map_err(|_| format!("`{s}` is not an IANA time zone name"))
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for TimeZone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for TimeZone {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TimeZone".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An IANA time zone name, e.g. `Europe/Belgrade` or `UTC`.",
        })
    }
}

/// The settings of one tenant. Absent until an admin first changes them; an absent
/// record means the defaults ([`TenantSettings::defaults`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TenantSettings {
    /// Common metadata; `meta.id` equals `meta.tenant_id`.
    pub meta: Meta,
    /// The zone whose calendar dates documents carry: issue and due dates, invoice
    /// number years, quote validity, overdue and aging.
    pub time_zone: TimeZone,
}

impl TenantSettings {
    /// The settings a tenant has before any change: UTC. Version 0 means "not stored".
    pub fn defaults(tenant: TenantId, now: DateTime<Utc>) -> Self {
        let mut meta = Meta::new(tenant, now);
        meta.id = tenant.0;
        meta.version = 0;
        Self { meta, time_zone: TimeZone::UTC }
    }
}

impl Entity for TenantSettings {
    const KIND: EntityKind = EntityKind::TenantSettings;
    const RESOURCE: Resource = Resource::Settings;
    entity_meta!();

    indexed_fields! {
        created_at [],
        updated_at [],
    }
}
