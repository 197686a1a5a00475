//! Each entity's field declarations against what uses them: the filter types accept
//! exactly the declared filter parameters, and every sortable or searchable field is
//! indexed with the type its values have.

use crm_core::{
    access::{
        audit::{AuditFilter, AuditLog},
        users::{User, UserFilter},
    },
    customers::{
        companies::{Company, CompanyFilter},
        contacts::{Contact, ContactFilter},
        deals::{Deal, DealFilter},
        leads::{Lead, LeadFilter},
    },
    entity::Entity,
    fields::{FieldType, filter_params},
    fields_of,
    sales::{
        credit_notes::{CreditNote, CreditNoteFilter},
        delivery_notes::{DeliveryNote, DeliveryNoteFilter},
        invoices::{Invoice, InvoiceFilter},
        payments::{Payment, PaymentFilter},
        products::{Product, ProductFilter},
        quotes::{Quote, QuoteFilter},
        refunds::{Refund, RefundFilter},
    },
    storage::EntityKind,
    work::{
        projects::{Project, ProjectFilter},
        tasks::{Task, TaskFilter},
    },
};
use serde::de::DeserializeOwned;

/// The field names a `deny_unknown_fields` type accepts, read from serde's refusal
/// of a name it cannot know.
fn accepted_names<F: DeserializeOwned>() -> Vec<String> {
    let refusal = match serde_json::from_value::<F>(serde_json::json!({ "\u{1}probe": 0 })) {
        Ok(_) => panic!("{} accepted an unknown field", std::any::type_name::<F>()),
        Err(e) => e.to_string(),
    };
    let expected = refusal.split("expected").nth(1).unwrap_or("");
    let mut names: Vec<String> = expected.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    names.sort();
    names
}

fn assert_filters_match<E: Entity, F: DeserializeOwned>() {
    let mut declared: Vec<String> = filter_params(E::FIELDS).into_iter().map(|(name, _)| name.to_owned()).collect();
    declared.sort();
    assert_eq!(
        accepted_names::<F>(),
        declared,
        "{} accepts other filters than {} declares",
        std::any::type_name::<F>(),
        std::any::type_name::<E>()
    );
}

#[test]
fn filter_types_accept_exactly_the_declared_filters() {
    assert_filters_match::<User, UserFilter>();
    assert_filters_match::<AuditLog, AuditFilter>();
    assert_filters_match::<Company, CompanyFilter>();
    assert_filters_match::<Contact, ContactFilter>();
    assert_filters_match::<Deal, DealFilter>();
    assert_filters_match::<Lead, LeadFilter>();
    assert_filters_match::<DeliveryNote, DeliveryNoteFilter>();
    assert_filters_match::<CreditNote, CreditNoteFilter>();
    assert_filters_match::<Refund, RefundFilter>();
    assert_filters_match::<Invoice, InvoiceFilter>();
    assert_filters_match::<Payment, PaymentFilter>();
    assert_filters_match::<Product, ProductFilter>();
    assert_filters_match::<Quote, QuoteFilter>();
    assert_filters_match::<Project, ProjectFilter>();
    assert_filters_match::<Task, TaskFilter>();
}

#[test]
fn every_kind_declares_its_common_fields_first_and_names_each_field_once() {
    for kind in EntityKind::ALL {
        let fields = fields_of(*kind);
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        assert_eq!(names[..2], ["created_at", "updated_at"], "{kind}: created_at and updated_at come first");
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{kind} declares a field twice: {names:?}");
        for field in fields.iter().filter(|f| f.searchable || f.unique) {
            assert_eq!(field.ty, FieldType::Text, "{kind}.{}: only text is searched or kept unique", field.name);
        }
    }
}

#[tokio::test]
async fn indexed_values_have_the_declared_types() {
    use crm_core::{entity::to_record, storage::FieldValue};
    let w = crate::support::world().await;
    let input = crm_core::customers::contacts::NewContact {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        email: Some("ADA@example.test".into()),
        ..Default::default()
    };
    let contact = w.crm.contacts().create(&w.admin, input).await.unwrap();
    let record = to_record(&contact).unwrap();
    let names: Vec<&str> = record.fields.iter().map(|(n, _)| *n).collect();
    let declared: Vec<&str> = Contact::FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(names, declared, "index() emits the declared fields in order");
    for ((name, value), field) in record.fields.iter().zip(Contact::FIELDS) {
        let fits = matches!(
            (value, field.ty),
            (FieldValue::Null, _)
                | (FieldValue::Text(_), FieldType::Text)
                | (FieldValue::Uuid(_), FieldType::Uuid)
                | (FieldValue::Timestamp(_), FieldType::Timestamp)
        );
        assert!(fits, "{name}: {value:?} is not a {:?}", field.ty);
    }
    assert_eq!(
        record.fields.iter().find(|(n, _)| *n == "email").unwrap().1,
        FieldValue::Text("ada@example.test".into())
    );
}
