use super::*;
use crate::model::Outcome;

const NOW: u64 = 1_795_000_000_000;

fn one(json: &str) -> Result<Event, Vec<Problem>> {
    match parse_body(json.as_bytes(), BodyFormat::Json, NOW) {
        Ok(mut events) => Ok(events.remove(0)),
        Err(IngestError::Invalid(problems)) => Err(problems),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

fn field_of(json: &str) -> String {
    let problems = one(json).expect_err("must be refused");
    problems[0].field.clone().unwrap_or_default()
}

#[test]
fn minimal_event_takes_defaults() {
    let e = one(r#"{"type":"token.issued"}"#).expect("valid");
    assert_eq!(e.ts, NOW);
    assert_eq!(e.outcome, Outcome::Success);
    let e = one(r#"{"type":"something.else"}"#).expect("valid");
    assert_eq!(e.outcome, Outcome::Info);
}

#[test]
fn every_field_is_read() {
    let e = one(
        r#"{"type":"token.issued","ts":"2026-11-18T10:00:00Z","id":"k1","outcome":"failure",
        "token":"t","client_id":"c","user_id":"u","device_id":"d","grant_type":"refresh_token",
        "scopes":["openid"],"ip":"::ffff:10.0.0.1","user_agent":"ua","method":"POST",
        "route":"/token?code=x","status":400,"error":"bad","expires_at":1795000000000,
        "duration_ms":12,"context":{"k":[1,2]}}"#,
    )
    .expect("valid");
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.ip.map(|i| i.to_string()).as_deref(), Some("10.0.0.1"));
    assert_eq!(e.route.as_deref(), Some("/token"));
    assert_eq!(e.context.as_deref(), Some(r#"{"k":[1,2]}"#));
    assert_eq!(e.scopes, vec!["openid".to_owned()]);
    assert_eq!(e.status, Some(400));
}

#[test]
fn each_rule_names_its_field() {
    let cases = [
        (r#"{}"#, "type"),
        (r#"{"type":"Bad Type"}"#, "type"),
        (r#"{"type":"a","ts":"2020-01-01T00:00:00Z"}"#, "ts"),
        (r#"{"type":"a","ts":1795000400000}"#, "ts"),
        (r#"{"type":"a","outcome":"meh"}"#, "outcome"),
        (r#"{"type":"a","ip":"1.2.3"}"#, "ip"),
        (r#"{"type":"a","status":99}"#, "status"),
        (r#"{"type":"a","status":"200"}"#, "status"),
        (r#"{"type":"a","duration_ms":3600001}"#, "duration_ms"),
        (r#"{"type":"a","duration_ms":-1}"#, "duration_ms"),
        (r#"{"type":"a","context":[1]}"#, "context"),
        (r#"{"type":"a","scopes":"openid"}"#, "scopes"),
        (r#"{"type":"a","grant_type":5}"#, "grant_type"),
        (r#"{"type":"a","tokn":"typo"}"#, "tokn"),
        (r#"{"type":"a","type":"b"}"#, "type"),
    ];
    for (json, field) in cases {
        assert_eq!(field_of(json), field, "{json}");
    }
    let long = format!(r#"{{"type":"a","token":"{}"}}"#, "t".repeat(129));
    assert_eq!(field_of(&long), "token");
    let ctx = format!(r#"{{"type":"a","context":{{"k":"{}"}}}}"#, "x".repeat(4100));
    assert_eq!(field_of(&ctx), "context");
}

#[test]
fn long_free_text_is_truncated_not_refused() {
    let json = format!(r#"{{"type":"a","user_agent":"{}"}}"#, "u".repeat(600));
    assert_eq!(
        one(&json).expect("valid").user_agent.map(|s| s.len()),
        Some(512)
    );
}

#[test]
fn batch_is_all_or_nothing_with_indexes() {
    let body = r#"[{"type":"a"},{"type":"a","ip":"x"},{"type":"a"},{"nope":1}]"#;
    match parse_body(body.as_bytes(), BodyFormat::Json, NOW) {
        Err(IngestError::Invalid(p)) => {
            let idx: Vec<usize> = p.iter().map(|p| p.index).collect();
            assert_eq!(idx, vec![1, 3, 3]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn ndjson_and_limits() {
    let body = "{\"type\":\"a\"}\n\n{\"type\":\"b\"}\n";
    let events = parse_body(body.as_bytes(), BodyFormat::Ndjson, NOW).expect("valid");
    assert_eq!(events.len(), 2);
    assert_eq!(
        parse_body(b"[]", BodyFormat::Json, NOW),
        Err(IngestError::Empty)
    );
    assert!(matches!(
        parse_body(b"{not json", BodyFormat::Json, NOW),
        Err(IngestError::Malformed(_))
    ));
    let many = format!("[{}]", vec![r#"{"type":"a"}"#; 10_001].join(","));
    assert_eq!(
        parse_body(many.as_bytes(), BodyFormat::Json, NOW),
        Err(IngestError::TooMany(10_001))
    );
}

#[test]
fn non_object_items_are_problems() {
    match parse_body(br#"[{"type":"a"}, 5]"#, BodyFormat::Json, NOW) {
        Err(IngestError::Invalid(p)) => assert_eq!(p[0].index, 1),
        other => panic!("unexpected {other:?}"),
    }
}

mod no_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Whatever the network sends, parsing answers Ok or a typed error: never a panic.
        #[test]
        fn arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_body(&body, BodyFormat::Json, NOW);
            let _ = parse_body(&body, BodyFormat::Ndjson, NOW);
        }

        /// Objects made of the real field names with arbitrary JSON values.
        #[test]
        fn arbitrary_values_for_real_fields(
            values in proptest::collection::vec(
                (0usize..20, prop_oneof![
                    Just("null".to_owned()),
                    any::<i64>().prop_map(|n| n.to_string()),
                    any::<u64>().prop_map(|n| n.to_string()),
                    any::<f64>().prop_map(|f| if f.is_finite() { f.to_string() } else { "0".into() }),
                    ".{0,40}".prop_map(|s| serde_json::Value::String(s).to_string()),
                    Just("[]".to_owned()),
                    Just("{}".to_owned()),
                    Just("[\"a\",1]".to_owned()),
                ]),
                0..12,
            )
        ) {
            const FIELDS: [&str; 20] = [
                "type", "ts", "id", "outcome", "token", "client_id", "user_id", "device_id",
                "grant_type", "scopes", "ip", "user_agent", "method", "route", "status", "error",
                "expires_at", "duration_ms", "context", "unknown",
            ];
            let body: Vec<String> = values
                .iter()
                .map(|(f, v)| format!("\"{}\":{}", FIELDS[*f], v))
                .collect();
            let body = format!("{{{}}}", body.join(","));
            let _ = parse_body(body.as_bytes(), BodyFormat::Json, NOW);
        }
    }
}
