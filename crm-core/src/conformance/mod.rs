//! The storage conformance suite: one set of behaviour cases that every storage
//! adapter, and every decorator over one, must pass. Enabled by the `conformance`
//! feature. An adapter crate runs the whole suite with one line in its test binary:
//!
//! ```ignore
//! crm_core::conformance_suite!(sled, || async { my_fresh_storage().await });
//! ```
//!
//! That expands into a module named after the adapter with one `#[tokio::test]` per
//! case, so a failure names both the case and the adapter. The factory is called once
//! per case and must return a fresh, empty `Arc<dyn Storage>`. Cases are plain
//! `pub async fn`s in [`cases`], usable on their own too.

pub mod cases;
pub mod child;
mod fixture;
pub mod flows;
pub mod job_queue;
pub mod leases;
pub mod listing;
pub mod outbox;
pub mod rate_limiter;
pub mod records;
pub mod services;
pub mod session_store;
pub mod streak_store;
mod support;

pub use fixture::World;

/// Calls `$callback!($args; case, case, …)` with the list of every case: the one
/// place the suite's cases are enumerated.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { $($args)* ;
            get_missing_is_none,
            insert_get_roundtrip,
            insert_duplicate_id_is_refused,
            update_with_stale_version_conflicts,
            delete_with_stale_version_conflicts,
            concurrent_updates_never_overwrite,
            failed_batch_writes_nothing,
            check_op_guards_unchanged_records,
            unique_keys_are_enforced_per_tenant,
            unique_key_can_move_within_one_batch,
            references_must_exist,
            referenced_records_cannot_be_deleted,
            audit_log_is_append_only,
            counters_advance_atomically,
            stale_counter_wins_over_taken_number,
            outbox_records_and_acknowledges,
            outbox_positions_follow_ack_order,
            outbox_reack_changes_nothing,
            outbox_stream_is_per_tenant_and_ordered,
            outbox_concurrent_acks_leave_no_gap,
            outbox_prune_takes_only_acked_before,
            tenants_are_isolated,
            filters_select_exactly,
            sorts_order_with_id_tiebreak,
            pagination_has_no_duplicates_or_gaps,
            pagination_is_stable_under_inserts,
            totals_count_all_matches,
            text_search_ignores_case,
            aggregates_group_and_sum,
            services_crud_every_entity,
            services_enforce_roles_and_tenants,
            tenant_settings_are_stored_per_tenant,
            flow_lead_conversion,
            flow_quote_to_paid_invoice,
            flow_invoice_to_delivery,
            invoice_numbers_under_concurrency,
            quote_and_delivery_numbers_under_concurrency,
            payments_under_concurrency,
            last_admin_under_concurrency,
            credit_notes_and_refunds_under_concurrency,
            webhook_delivery_log,
        }
    };
}

/// Names every case (the same list the macro expands).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_names {
    (; $($case:ident),* $(,)?) => {
        &[$(stringify!($case)),*]
    };
}

/// Every case of the suite, by name.
pub const CASES: &[&str] = __conformance_cases!(__conformance_names!());

/// Expands the suite for one adapter. See the module docs.
#[macro_export]
macro_rules! conformance_suite {
    ($adapter:ident, $factory:expr) => {
        mod $adapter {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases!(__conformance_emit!($adapter, $factory));
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_emit {
    ($adapter:ident, $factory:expr ; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let storage: ::std::sync::Arc<dyn $crate::storage::Storage> = ($factory)().await;
                ::std::eprintln!(
                    "conformance case `{}` on adapter `{}`",
                    ::std::stringify!($case),
                    storage.name(),
                );
                $crate::conformance::cases::$case(storage).await;
            }
        )*

        /// Checks the factory builds the adapter this suite is named after, and prints
        /// how many cases run on it.
        #[::tokio::test]
        async fn suite_runs_on_the_named_adapter() {
            let storage: ::std::sync::Arc<dyn $crate::storage::Storage> = ($factory)().await;
            ::std::assert_eq!(storage.name(), ::std::stringify!($adapter));
            ::std::eprintln!(
                "conformance: {} cases on adapter `{}`",
                $crate::conformance::CASES.len(),
                storage.name(),
            );
        }
    };
}
