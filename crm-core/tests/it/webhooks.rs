//! Standard Webhooks signatures and the retry schedule.

use chrono::{DateTime, Duration, TimeZone, Utc};
use crm_core::webhooks::{
    schedule::RetrySchedule,
    signing::{DEFAULT_TOLERANCE, SignedHeaders, VerifyError, WebhookSecret, sign, verify},
};
use uuid::Uuid;

/// The vector published with the specification (its libraries' tests and docs).
const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TIMESTAMP: i64 = 1_614_265_330;
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn at(timestamp: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(timestamp, 0).single().unwrap()
}

fn headers<'a>(timestamp: &'a str, signature: &'a str) -> SignedHeaders<'a> {
    SignedHeaders { id: SPEC_ID, timestamp, signature }
}

#[test]
fn signatures_reproduce_the_published_test_vectors() {
    let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
    assert_eq!(sign(&secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY), SPEC_SIGNATURE);
    // standard-webhooks/libraries/rust `test_sign`.
    let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    assert_eq!(
        sign(&secret, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553, body),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}

#[test]
fn the_published_vector_verifies_and_any_change_does_not() {
    let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
    let ts = SPEC_TIMESTAMP.to_string();
    let now = at(SPEC_TIMESTAMP);
    assert_eq!(verify(&secret, headers(&ts, SPEC_SIGNATURE), SPEC_BODY, now, DEFAULT_TOLERANCE), Ok(()));

    let other = WebhookSecret::generate().unwrap();
    let wrong_secret = verify(&other, headers(&ts, SPEC_SIGNATURE), SPEC_BODY, now, DEFAULT_TOLERANCE);
    assert_eq!(wrong_secret, Err(VerifyError::NoMatchingSignature));
    let wrong_body = verify(&secret, headers(&ts, SPEC_SIGNATURE), br#"{"test": 2432232315}"#, now, DEFAULT_TOLERANCE);
    assert_eq!(wrong_body, Err(VerifyError::NoMatchingSignature));
    // A timestamp changed within the tolerance: the signature covers it.
    let shifted = (SPEC_TIMESTAMP + 1).to_string();
    let wrong_ts = verify(&secret, headers(&shifted, SPEC_SIGNATURE), SPEC_BODY, now, DEFAULT_TOLERANCE);
    assert_eq!(wrong_ts, Err(VerifyError::NoMatchingSignature));
    let wrong_id = SignedHeaders { id: "msg_other", timestamp: &ts, signature: SPEC_SIGNATURE };
    assert_eq!(verify(&secret, wrong_id, SPEC_BODY, now, DEFAULT_TOLERANCE), Err(VerifyError::NoMatchingSignature));
    let not_a_number = verify(&secret, headers("yesterday", SPEC_SIGNATURE), SPEC_BODY, now, DEFAULT_TOLERANCE);
    assert_eq!(not_a_number, Err(VerifyError::InvalidTimestamp));
}

#[test]
fn timestamps_outside_the_tolerance_are_refused_both_ways() {
    let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
    let ts = SPEC_TIMESTAMP.to_string();
    let tolerance = DEFAULT_TOLERANCE;
    let edge = SPEC_TIMESTAMP + tolerance.num_seconds();
    assert_eq!(verify(&secret, headers(&ts, SPEC_SIGNATURE), SPEC_BODY, at(edge), tolerance), Ok(()));
    for now in [edge + 1, SPEC_TIMESTAMP - tolerance.num_seconds() - 1] {
        let result = verify(&secret, headers(&ts, SPEC_SIGNATURE), SPEC_BODY, at(now), tolerance);
        assert_eq!(result, Err(VerifyError::OutsideTolerance), "now {now}");
    }
}

#[test]
fn one_matching_signature_among_several_is_enough_and_other_versions_are_ignored() {
    let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
    let ts = SPEC_TIMESTAMP.to_string();
    let now = at(SPEC_TIMESTAMP);
    let list = format!("v1,bm9wZQ== v1a,{} not-a-signature {SPEC_SIGNATURE}", &SPEC_SIGNATURE[3..]);
    assert_eq!(verify(&secret, headers(&ts, &list), SPEC_BODY, now, DEFAULT_TOLERANCE), Ok(()));
    let only_other_version = format!("v1a,{}", &SPEC_SIGNATURE[3..]);
    let result = verify(&secret, headers(&ts, &only_other_version), SPEC_BODY, now, DEFAULT_TOLERANCE);
    assert_eq!(result, Err(VerifyError::NoMatchingSignature));
}

#[test]
fn secrets_round_trip_as_whsec_and_never_print() {
    let secret = WebhookSecret::generate().unwrap();
    let text = secret.expose();
    assert!(text.starts_with("whsec_"), "{text}");
    assert_eq!(WebhookSecret::parse(&text).unwrap(), secret);
    assert_ne!(WebhookSecret::generate().unwrap(), secret, "secrets are random");
    assert!(!format!("{secret:?}").contains(&text[6..]));
    for bad in ["whsec_", "whsec_not base64!", ""] {
        assert_eq!(WebhookSecret::parse(bad), Err(VerifyError::InvalidSecret), "{bad:?}");
    }
}

#[test]
fn the_retry_schedule_spans_about_three_days_then_gives_up() {
    let schedule = RetrySchedule;
    let expected = [5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400];
    let waits: Vec<i64> = (1..schedule.max_attempts()).map(|n| schedule.base_wait(n).unwrap().num_seconds()).collect();
    assert_eq!(waits, expected);
    assert_eq!(schedule.max_attempts(), 10);
    assert_eq!(schedule.base_wait(0), None, "nothing has failed yet: the first attempt is immediate");
    assert_eq!(schedule.base_wait(schedule.max_attempts()), None, "the tenth failure is final");
    let total: i64 = expected.iter().sum();
    assert!((Duration::hours(72)..Duration::hours(80)).contains(&Duration::seconds(total)), "{total} s");
}

#[test]
fn retries_are_jittered_up_to_a_tenth_deterministically() {
    let schedule = RetrySchedule;
    let failed_at = at(1_800_000_000);
    let mut stretched = 0;
    for _ in 0..50 {
        let delivery = Uuid::now_v7();
        for attempts in 1..schedule.max_attempts() {
            let base = schedule.base_wait(attempts).unwrap();
            let next = schedule.next_attempt(delivery, attempts, failed_at).unwrap();
            assert!(next >= failed_at + base && next <= failed_at + base + base / 10, "attempt {attempts}: {next}");
            assert_eq!(schedule.next_attempt(delivery, attempts, failed_at), Some(next), "the same every time");
            stretched += i32::from(next > failed_at + base);
        }
        assert_eq!(schedule.next_attempt(delivery, schedule.max_attempts(), failed_at), None);
    }
    assert!(stretched > 300, "jitter spreads retries: only {stretched} of 450 were moved");
}
