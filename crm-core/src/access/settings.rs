//! The tenant's settings as its admins change them (today: the time zone). Everyone in
//! the tenant reads them; the kernel reads them for "today" ([`Crm::today`]).

use serde::Deserialize;

use crate::{
    authz::{Action, Principal, Resource},
    crm::Crm,
    error::{CrmError, Result, Validator},
    storage::EntityKind,
    tenant_settings::{TenantSettings, TimeZone},
};

/// Changes to the tenant's settings; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// The version read (0 while the tenant has its defaults); a stale one is a conflict.
    pub version: Option<u64>,
    /// An IANA time zone name (`Europe/Belgrade`); dates of documents follow it.
    pub time_zone: Option<String>,
}

/// The tenant settings service.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a> {
    crm: &'a Crm,
}

impl Crm {
    /// The tenant settings service.
    pub fn settings(&self) -> Settings<'_> {
        Settings { crm: self }
    }
}

impl Settings<'_> {
    /// The principal's tenant's settings (the defaults, version 0, until first changed).
    pub async fn get(&self, p: &Principal) -> Result<TenantSettings> {
        self.crm.authorize(p, Resource::Settings, Action::Read)?;
        self.crm.settings_of(p.tenant_id(), self.crm.now()).await
    }

    /// Changes the tenant's settings (admins); the first change stores the record.
    /// A new time zone applies from the next call that needs today's date.
    pub async fn update(&self, p: &Principal, patch: SettingsPatch) -> Result<TenantSettings> {
        self.crm.authorize(p, Resource::Settings, Action::Update)?;
        let before = self.crm.settings_of(p.tenant_id(), self.crm.now()).await?;
        if patch.version.is_some_and(|v| v != before.meta.version) {
            return Err(CrmError::Conflict { kind: EntityKind::TenantSettings, id: before.meta.id });
        }
        let mut v = Validator::new();
        let time_zone = patch.time_zone.as_deref().and_then(|name| match name.parse::<TimeZone>() {
            Ok(zone) => Some(zone),
            Err(_) => {
                v.push("time_zone", "must be an IANA time zone name, such as Europe/Belgrade or UTC");
                None
            }
        });
        v.finish()?;
        let mut after = before.clone();
        after.time_zone = time_zone.unwrap_or(before.time_zone);
        let mut tx = self.crm.tx(p);
        if before.meta.version == 0 {
            after.meta.version = 1;
            tx.insert(&after)?;
        } else {
            tx.update(&before, &mut after)?;
        }
        match tx.commit().await {
            // Two first changes at once: the loser read defaults that are now stale.
            Err(CrmError::AlreadyExists { kind: EntityKind::TenantSettings, .. }) => {
                Err(CrmError::Conflict { kind: EntityKind::TenantSettings, id: before.meta.id })
            }
            other => other.map(|()| after),
        }
    }
}
