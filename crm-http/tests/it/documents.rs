//! Document numbers and corrections over HTTP: quotes and delivery notes carry their
//! numbers (searchable), credit notes and refunds are resources of their own.

use poem::http::StatusCode;
use serde_json::json;

use crate::support::{Harness, Reply, harness};

fn refused_naming(reply: &Reply, field: &str) {
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", reply.body);
    assert_eq!(reply.body["error"]["details"][0]["field"], field, "{:?}", reply.body);
}

async fn issued_invoice(h: &Harness, token: &str) -> String {
    let line =
        json!({ "description": "Box", "quantity": "4", "unit_price": "25", "discount_percent": "0", "tax_rate": "0" });
    let company = h.w.client_company.meta.id;
    let invoice =
        h.post(token, "/api/v1/invoices", json!({ "company_id": company, "currency": "EUR", "lines": [line] })).await;
    let id = invoice.id();
    let issued = h.post(token, &format!("/api/v1/invoices/{id}/issue"), json!({})).await;
    assert_eq!(issued.status, StatusCode::OK, "{:?}", issued.body);
    id
}

#[tokio::test]
async fn quotes_and_delivery_notes_show_their_numbers_and_are_found_by_them() {
    let h = harness().await;
    let token = h.token(&h.w.manager).await;
    let company = h.w.client_company.meta.id;
    let line =
        json!({ "description": "x", "quantity": "1", "unit_price": "10", "discount_percent": "0", "tax_rate": "0" });
    let quote = h
        .post(
            &token,
            "/api/v1/quotes",
            json!({ "company_id": company, "currency": "EUR", "lines": [line], "valid_until": "2026-12-31" }),
        )
        .await;
    assert_eq!(quote.data()["number"], json!(null));
    let sent = h.post(&token, &format!("/api/v1/quotes/{}/send", quote.id()), json!({})).await;
    assert_eq!(sent.data()["number"], "QUO-2026-000001", "{:?}", sent.body);
    let found = h.get(&token, "/api/v1/quotes?search=quo-2026-000001").await;
    assert_eq!(found.data()[0]["meta"]["id"], quote.id().as_str(), "{:?}", found.body);

    let invoice = issued_invoice(&h, &token).await;
    let note = h
        .post(
            &token,
            "/api/v1/delivery-notes",
            json!({ "invoice_id": invoice, "lines": [{ "line_index": 0, "quantity": "1" }] }),
        )
        .await;
    assert_eq!(note.data()["number"], json!(null));
    let shipped = h.post(&token, &format!("/api/v1/delivery-notes/{}/ship", note.id()), json!({})).await;
    assert_eq!(shipped.data()["number"], "DN-2026-000001", "{:?}", shipped.body);
    let sorted = h.get(&token, "/api/v1/delivery-notes?sort=-number&search=DN-").await;
    assert_eq!(sorted.data().as_array().unwrap().len(), 1, "{:?}", sorted.body);
}

#[tokio::test]
async fn credit_notes_and_refunds_are_resources_that_correct_an_invoice() {
    let h = harness().await;
    let token = h.token(&h.w.manager).await;
    let invoice = issued_invoice(&h, &token).await;
    let payment = h
        .post(&token, "/api/v1/payments", json!({ "invoice_id": invoice, "amount": "100.00", "method": "card" }))
        .await;
    assert_eq!(payment.status, StatusCode::CREATED, "{:?}", payment.body);
    // Paid in full: the payment is refunded (in part) before the invoice is credited.
    let refused = h
        .post(
            &token,
            "/api/v1/credit-notes",
            json!({ "invoice_id": invoice, "lines": [{ "line_index": 0, "quantity": "1" }] }),
        )
        .await;
    refused_naming(&refused, "invoice_id");
    let refund = h.post(&token, "/api/v1/refunds", json!({ "payment_id": payment.id(), "amount": "25.00" })).await;
    assert_eq!(refund.status, StatusCode::CREATED, "{:?}", refund.body);
    assert_eq!(refund.data()["amount"], "25.00");
    let too_much = h.post(&token, "/api/v1/refunds", json!({ "payment_id": payment.id(), "amount": "75.01" })).await;
    refused_naming(&too_much, "amount");
    let over = h
        .post(
            &token,
            "/api/v1/credit-notes",
            json!({ "invoice_id": invoice, "lines": [{ "line_index": 0, "quantity": "5" }] }),
        )
        .await;
    refused_naming(&over, "lines[0].quantity");
    let credit = h
        .post(
            &token,
            "/api/v1/credit-notes",
            json!({ "invoice_id": invoice, "lines": [{ "line_index": 0, "quantity": "1" }] }),
        )
        .await;
    assert_eq!(credit.status, StatusCode::CREATED, "{:?}", credit.body);
    assert_eq!((&credit.data()["number"], &credit.data()["total"]), (&json!("CN-2026-000001"), &json!("25")));
    let settled = h.get(&token, &format!("/api/v1/invoices/{invoice}")).await;
    assert_eq!(
        (&settled.data()["status"], &settled.data()["amount_paid"], &settled.data()["amount_credited"]),
        (&json!("paid"), &json!("75.00"), &json!("25"))
    );
    let listed = h.get(&token, &format!("/api/v1/credit-notes?invoice_id={invoice}")).await;
    assert_eq!(listed.data().as_array().unwrap().len(), 1);
    let listed = h.get(&token, &format!("/api/v1/refunds?payment_id={}", payment.id())).await;
    assert_eq!(listed.data().as_array().unwrap().len(), 1);
    assert_eq!(h.get(&token, &format!("/api/v1/credit-notes/{}", credit.id())).await.status, StatusCode::OK);
    assert_eq!(h.get(&token, &format!("/api/v1/refunds/{}", refund.id())).await.status, StatusCode::OK);
    // A user may not correct the manager's invoice.
    let user = h.token(&h.w.user).await;
    let forbidden = h
        .post(
            &user,
            "/api/v1/credit-notes",
            json!({ "invoice_id": invoice, "lines": [{ "line_index": 0, "amount": "1.00" }] }),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "{:?}", forbidden.body);
}
