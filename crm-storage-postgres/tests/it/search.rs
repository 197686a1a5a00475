//! Text search beyond ASCII: the same answers as the contract's `to_lowercase` matching.

use std::sync::Arc;

use crm_core::{
    PageRequest,
    conformance::World,
    customers::contacts::{ContactFilter, NewContact},
    storage::Storage,
};
use crm_storage_postgres::testing::fresh_storage;

#[tokio::test]
async fn search_ignores_case_of_non_ascii_letters_and_treats_wildcards_literally() {
    let s: Arc<dyn Storage> = Arc::new(fresh_storage().await);
    let w = World::new(s).await;
    for (first, last) in [("Élodie", "Ångström"), ("Zoë", "Öztürk"), ("Per%cent", "Under_score"), ("Plain", "Name")]
    {
        let input = NewContact { first_name: first.into(), last_name: last.into(), ..NewContact::default() };
        w.crm.contacts().create(&w.admin, input).await.unwrap();
    }
    let search = async |term: &str| {
        let page = PageRequest { search: Some(term.into()), limit: Some(100), ..PageRequest::default() };
        let found = w.crm.contacts().list(&w.admin, &ContactFilter::default(), &page).await.unwrap().items;
        found.into_iter().map(|c| c.first_name).collect::<Vec<_>>()
    };
    assert_eq!(search("ÉLO").await, vec!["Élodie"]);
    assert_eq!(search("ångs").await, vec!["Élodie"]);
    assert_eq!(search("ÖZT").await, vec!["Zoë"]);
    assert_eq!(search("%c").await, vec!["Per%cent"]);
    assert_eq!(search("r_s").await, vec!["Per%cent"]);
    assert!(search("p%n").await.is_empty(), "`%` in a term is a literal, not a wildcard");
}
