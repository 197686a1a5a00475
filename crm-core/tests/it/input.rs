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

/// No adapter stores a control character (PostgreSQL cannot store NUL), so the core
/// refuses them everywhere, naming the field; long text keeps tabs and line breaks
/// (hardening item 24).
#[tokio::test]
async fn control_characters_are_refused_naming_the_field_but_long_text_keeps_line_breaks() {
    use crm_core::{
        CrmError,
        customers::{companies::NewCompany, contacts::NewContact},
    };
    let w = crate::support::world().await;
    let named = |result: crm_core::Result<_>| match result {
        Err(CrmError::Validation(errors)) => errors.fields.iter().map(|e| e.field.clone()).collect::<Vec<_>>(),
        Ok(_) => panic!("a control character was accepted"),
        Err(other) => panic!("expected a validation error, got {other:?}"),
    };
    let contact =
        |first_name: &str| NewContact { first_name: first_name.into(), last_name: "Doe".into(), ..Default::default() };
    assert_eq!(named(w.crm.contacts().create(&w.admin, contact("A\u{0}B")).await.map(|_| ())), ["first_name"]);
    assert_eq!(named(w.crm.contacts().create(&w.admin, contact("A\tB")).await.map(|_| ())), ["first_name"]);
    // Long text keeps tabs and line breaks.
    let address = "1 Main St\r\nSpringfield\tUS";
    let company = NewCompany { name: "Initech".into(), address: Some(address.into()), ..Default::default() };
    let created = w.crm.companies().create(&w.admin, company).await.unwrap();
    assert_eq!(created.address.as_deref(), Some(address));
    // Whatever a service checks, building the stored record refuses it too, naming the field.
    let mut stored = w.crm.contacts().create(&w.admin, contact("Ada")).await.unwrap();
    stored.position = Some("chief\u{0}".into());
    assert_eq!(named(crm_core::entity::to_record(&stored).map(|_| ())), ["position"]);
}

/// A cursor from a listing in another order, or a crafted one, is refused naming
/// `cursor` before any storage sees it (hardening item 24).
#[tokio::test]
async fn a_cursor_of_another_order_or_a_crafted_one_is_refused_naming_cursor() {
    use crm_core::{
        CrmError, PageRequest,
        customers::contacts::{ContactFilter, NewContact},
    };
    let w = crate::support::world().await;
    for name in ["Ames", "Baker", "Cole"] {
        let input = NewContact { first_name: "A".into(), last_name: name.into(), ..Default::default() };
        w.crm.contacts().create(&w.admin, input).await.unwrap();
    }
    let by_name = PageRequest { sort: Some("last_name".into()), ..PageRequest::first(1) };
    let page = w.crm.contacts().list(&w.admin, &ContactFilter::default(), &by_name).await.unwrap();
    let cursor = page.next.expect("a next page");
    let refused = |result: crm_core::Result<_>| match result {
        Err(CrmError::Validation(errors)) => assert_eq!(errors.fields[0].field, "cursor"),
        other => panic!("expected a refusal naming cursor, got {other:?}"),
    };
    let by_date = PageRequest { sort: Some("created_at".into()), ..PageRequest::first(1) }.after(&cursor);
    refused(w.crm.contacts().list(&w.admin, &ContactFilter::default(), &by_date).await.map(|_| ()));
    let by_id = PageRequest::first(1).after(&cursor);
    refused(w.crm.contacts().list(&w.admin, &ContactFilter::default(), &by_id).await.map(|_| ()));
    let crafted = PageRequest { cursor: Some("zz-not-hex".into()), ..PageRequest::first(1) };
    refused(w.crm.contacts().list(&w.admin, &ContactFilter::default(), &crafted).await.map(|_| ()));
    // The cursor still works in its own order.
    let next = w.crm.contacts().list(&w.admin, &ContactFilter::default(), &by_name.after(&cursor)).await.unwrap();
    assert_eq!(next.items[0].last_name, "Baker");
}
