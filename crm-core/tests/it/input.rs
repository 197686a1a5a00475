//! Service inputs read from text: patches tell absent from `null`, unknown fields are
//! refused, list filters read comma-separated names.

use crm_core::{
    customers::contacts::{ContactPatch, NewContact},
    customers::leads::{LeadFilter, LeadStatus},
};
use serde_json::json;

#[test]
fn a_patch_tells_absent_from_null_from_set() {
    let patch: ContactPatch = serde_json::from_value(json!({ "email": null, "phone": "+1 555" })).unwrap();
    assert_eq!(patch.email, Some(None), "null clears");
    assert_eq!(patch.phone, Some(Some("+1 555".to_owned())), "a value sets");
    assert_eq!(patch.position, None, "absent stays");
}

#[test]
fn unknown_input_fields_are_refused_not_ignored() {
    let err = serde_json::from_value::<ContactPatch>(json!({ "tenant_id": "x" })).unwrap_err();
    assert!(err.to_string().contains("unknown field `tenant_id`"), "{err}");
    let err =
        serde_json::from_value::<NewContact>(json!({ "first_name": "A", "last_name": "B", "version": 3 })).unwrap_err();
    assert!(err.to_string().contains("unknown field `version`"), "{err}");
}

#[test]
fn list_filters_read_comma_separated_names_and_refuse_unknown_ones() {
    let filter: LeadFilter = serde_json::from_value(json!({ "statuses": "new, contacted" })).unwrap();
    assert_eq!(filter.statuses, vec![LeadStatus::New, LeadStatus::Contacted]);
    let filter: LeadFilter = serde_json::from_value(json!({ "statuses": ["qualified"] })).unwrap();
    assert_eq!(filter.statuses, vec![LeadStatus::Qualified]);
    let err = serde_json::from_value::<LeadFilter>(json!({ "statuses": "new,won" })).unwrap_err();
    assert!(err.to_string().contains("won"), "{err}");
    assert!(serde_json::from_value::<LeadFilter>(json!({ "colour": "red" })).is_err());
}
