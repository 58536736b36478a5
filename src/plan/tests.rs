use super::*;
use crate::plan::inbound::DEFAULT_PATH_PREFIX;
use crate::rules::peer::PeerPattern;

const NOW: i64 = 1_800_000_000;

fn no_env(_: &str) -> Option<String> {
    None
}

fn errors(json: &str) -> Vec<String> {
    match from_json(json, &no_env, NOW) {
        Ok(_) => panic!("config accepted: {json}"),
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    }
}

fn inbound(json: &str, env: EnvLookup) -> InboundPlan {
    match from_json(json, env, NOW).unwrap() {
        Compiled::Inbound(p) => p,
        Compiled::Outbound(_) => panic!("not inbound"),
    }
}

const GOOD: &str = r#"{
    "max_body_bytes": 4096.0,
    "allow_cidrs": ["127.0.0.0/8"],
    "triggers": [{
        "id": "trg_a",
        "secrets": [{"id": "k1", "value": "s1"}, {"env": "OLD", "not_after": 100}],
        "allow_cidrs": ["::1"],
        "mtls": {"required": true, "allowed_peers": ["uri:spiffe://x"]},
        "match": {"jsonpath": "$.action", "equals": "escalated"},
        "action": {"agent_id": "ticket-triage", "inputs": {"id": "{{ payload.id }}"}}
    }]
}"#;

#[test]
fn compiles_a_full_trigger() {
    let env = |k: &str| (k == "OLD").then(|| "old-secret".to_string());
    let plan = inbound(GOOD, &env);
    assert_eq!(plan.max_body_bytes, 4096);
    assert_eq!(plan.tolerance_seconds, 300);
    assert_eq!(plan.path_prefix, DEFAULT_PATH_PREFIX);
    let t = &plan.triggers["trg_a"];
    assert_eq!(t.keys.len(), 2);
    assert_eq!(t.keys[0].key_id, "k1");
    assert_eq!(t.keys[1].key_id, "1");
    assert_eq!(t.keys[1].not_after, Some(100));
    assert_eq!(t.mtls.as_ref().unwrap().allowed_peers, vec![PeerPattern::Uri("spiffe://x".to_string())]);
    assert_eq!(t.conditions.len(), 1);
}

#[test]
fn missing_env_names_field() {
    assert_eq!(errors(GOOD), vec!["triggers[0].secrets[1].env: environment variable \"OLD\" is not set"]);
}

#[test]
fn reports_every_error_with_path() {
    let e = errors(
        r#"{"allow_cidrs": ["nope"], "triggers": [
          {"id": "a", "secret": "s", "action": {"agent_id": "x"}},
          {"id": "b", "secret": "s", "allow_cidrs": ["10.0.0.0/8", "10.0.0.0/33"], "action": {"agent_id": "x"}},
          {"id": "a", "secret": "s", "action": {"agent_id": "x"}},
          {"id": "c", "action": {"agent_id": ""},
           "match": [{"jsonpath": "$.a"}, {"jsonpath": "$["}],
           "secrets": [{"value": "v", "env": "E"}]}
        ]}"#,
    );
    let want = [
        "allow_cidrs[0]: invalid CIDR \"nope\"",
        "triggers[1].allow_cidrs[1]: invalid CIDR \"10.0.0.0/33\"",
        "triggers[2].id: duplicate trigger id \"a\"",
        "triggers[3].secrets[0]: needs exactly one of value or env",
        "triggers[3].match[1].jsonpath: ",
        "triggers[3].action.agent_id: ",
    ];
    for w in want {
        assert!(e.iter().any(|x| x.starts_with(w)), "missing {w:?} in {e:#?}");
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
}

#[test]
fn template_errors_name_the_input() {
    let e =
        errors(r#"{"triggers":[{"id":"a","secret":"s","action":{"agent_id":"x","inputs":{"bad":"{{ payload. }}"}}}]}"#);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("triggers[0].action.inputs.bad: "), "{e:?}");
}

#[test]
fn secret_rules() {
    let e = errors(r#"{"triggers":[{"id":"a","action":{"agent_id":"x"}}]}"#);
    assert_eq!(e, vec!["triggers[0].secrets: a secret is required"]);
    let e = errors(r#"{"triggers":[{"id":"a","secret":"","action":{"agent_id":"x"}}]}"#);
    assert_eq!(e, vec!["triggers[0].secrets[0]: secret is empty"]);
    let e = errors(
        r#"{"triggers":[{"id":"a","secrets":[{"value":"v","not_before":1800000010,"not_after":1800000005}],"action":{"agent_id":"x"}}]}"#,
    );
    assert_eq!(e, vec!["triggers[0].secrets[0].not_after: must not be before not_before"]);
}

#[test]
fn mode_specific_fields_are_refused_in_the_other_mode() {
    let e = errors(r#"{"subscriptions":[{"id":"s","events":["a"],"secret":"x"}]}"#);
    assert_eq!(e, vec!["subscriptions: only valid with mode: outbound"]);
    let e = errors(r#"{"mode":"outbound","triggers":[{"id":"t","secret":"x","action":{"agent_id":"a"}}]}"#);
    assert_eq!(e, vec!["triggers: only valid with mode: inbound"]);
}

#[test]
fn the_opt_in_cuts_default_to_the_contract_and_name_their_fields() {
    let plan = |json: &str| inbound(json, &no_env);
    let t = r#""triggers":[{"id":"t","secret":"x","action":{"agent_id":"a"}}]"#;
    let p = plan(&format!("{{{t}}}"));
    assert!(p.outputs.audit_filter_state);
    assert_eq!(p.outputs.annotations(), crate::contract::names::ANNOTATIONS.to_vec());
    let p = plan(&format!(
        r#"{{{t},"audit_filter_state":false,"annotations":["x-combo-delivery-id","x-combo-inputs","x-combo-agent-id"]}}"#
    ));
    assert!(!p.outputs.audit_filter_state);
    // In the contract's order, whatever the list's.
    assert_eq!(p.outputs.annotations(), vec!["x-combo-agent-id", "x-combo-inputs", "x-combo-delivery-id"]);
    let e = errors(&format!(
        r#"{{{t},"annotations":["x-combo-delivery-id","x-combo-agent-id","x-combo-agent","x-combo-agent-id"]}}"#
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("annotations[2]: \"x-combo-agent\" is not one of x-combo-trigger-id"), "{e:?}");
    assert_eq!(e[1], "annotations[3]: \"x-combo-agent-id\" is listed twice");
    // Never without the delivery id backends deduplicate on, nor, when
    // non-matches are forwarded, without their only mark.
    let e = errors(&format!(r#"{{{t},"annotations":["x-combo-agent-id"]}}"#));
    assert_eq!(e, vec!["annotations: must list x-combo-delivery-id: backends deduplicate on it"]);
    let e = errors(&format!(r#"{{{t},"on_no_match":"forward","annotations":["x-combo-delivery-id"]}}"#));
    let matched = "annotations: must list x-combo-matched: with on_no_match: forward it is the only mark of a \
                   delivery that did not match";
    assert_eq!(e, vec![matched]);
    for field in [r#""annotations":[]"#, r#""audit_filter_state":true"#] {
        let e = errors(&format!(r#"{{"mode":"outbound",{field}}}"#));
        let name = field.split('"').nth(1).unwrap();
        assert!(e.contains(&format!("{name}: only valid with mode: inbound")), "{e:?}");
    }
}

#[test]
fn unknown_source_names_the_field() {
    let e = errors(r#"{"triggers":[{"id":"a","source":"gitlob","secret":"s","action":{"agent_id":"x"}}]}"#);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("triggers[0].source: unknown preset \"gitlob\""), "{e:?}");
}

#[test]
fn a_secret_in_the_wrong_shape_is_never_echoed() {
    for cfg in [
        r#"{"triggers":[{"id":"a","secrets":["hunter2-secret"],"action":{"agent_id":"x"}}]}"#,
        r#"{"triggers":[{"id":"a","secret":{"value":"hunter2-secret"},"action":{"agent_id":"x"}}]}"#,
        r#"{"triggers":[{"id":"a","secrets":[{"value":["hunter2-secret"]}],"action":{"agent_id":"x"}}]}"#,
    ] {
        let e = errors(cfg);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(!e[0].contains("hunter2"), "{e:?}");
        assert!(e[0].starts_with("triggers[0].secret"), "{e:?}");
    }
}

#[test]
fn numbers_are_range_checked() {
    let t = |extra: &str| format!(r#"{{{extra} "triggers":[{{"id":"a","secret":"s","action":{{"agent_id":"x"}}}}]}}"#);
    for (cfg, path) in [
        (t(r#""max_body_bytes": 0,"#), "max_body_bytes"),
        (t(r#""max_body_bytes": 17592186044416,"#), "max_body_bytes"),
        (t(r#""replay": {"max_entries": 17592186044416},"#), "replay.max_entries"),
        (t(r#""replay": {"inflight_seconds": 0},"#), "replay.inflight_seconds"),
        (t(r#""timestamp_tolerance_seconds": 86401,"#), "timestamp_tolerance_seconds"),
        (t(r#""max_inputs_bytes": 0,"#), "max_inputs_bytes"),
    ] {
        let e = errors(&cfg);
        assert!(e.iter().any(|x| x.starts_with(path)), "{path}: {e:?}");
    }
    let e = errors(
        r#"{"triggers":[{"id":"a","secrets":[{"value":"v","not_before":9223372036854775808}],"action":{"agent_id":"x"}}]}"#,
    );
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("triggers[0].secrets[0].not_before: must be unix seconds"), "{e:?}");
}

#[test]
fn out_of_range_numbers_are_never_echoed() {
    let t = |extra: &str| format!(r#"{{{extra} "triggers":[{{"id":"a","secret":"s","action":{{"agent_id":"x"}}}}]}}"#);
    for (extra, expected) in [
        (r#""replay": {"max_entries": 424242424},"#, "replay.max_entries: out of range (max 10000000)"),
        (r#""replay": {"max_entries": 0},"#, "replay.max_entries: out of range (min 1)"),
        (
            r#""replay": {"max_entries": -424242},"#,
            "replay.max_entries: out of range (expected a non-negative integer)",
        ),
        (
            r#""max_body_bytes": 4242.5,"#,
            "max_body_bytes: expected a non-negative integer, got a number with a fraction",
        ),
        (r#""max_body_bytes": -4242.0,"#, "max_body_bytes: out of range (expected a non-negative integer up to 2^53)"),
        (r#""max_body_bytes": 4.2e300,"#, "max_body_bytes: out of range (expected a non-negative integer up to 2^53)"),
    ] {
        let e = errors(&t(extra));
        assert_eq!(e, vec![expected.to_string()], "{extra}");
        assert!(!e[0].contains("4242"), "{e:?}");
    }
    let e = errors(r#"{"mode":"outbound","subscriptions":[{"id":"a b 4242","events":["x"],"secret":"s"}]}"#);
    assert!(e.iter().any(|x| x == "subscriptions[0].id: must be non-empty visible ASCII"), "{e:?}");
    assert!(!e.iter().any(|x| x.contains("4242")), "{e:?}");
}

#[test]
fn expired_secrets_are_an_error_and_expiring_ones_a_warning() {
    let e = errors(&format!(
        r#"{{"triggers":[{{"id":"a","secrets":[{{"value":"v","not_after":{}}}],"action":{{"agent_id":"x"}}}}]}}"#,
        NOW - 1
    ));
    assert_eq!(e, vec!["triggers[0].secrets: every secret has expired (not_after is in the past)"]);
    let p = inbound(
        &format!(
            r#"{{"triggers":[{{"id":"a","secrets":[{{"value":"v","not_after":{}}}],"action":{{"agent_id":"x"}}}}]}}"#,
            NOW + 3600
        ),
        &no_env,
    );
    assert!(
        p.warnings.iter().any(|w| w.starts_with("triggers[0]: the last secret expires within 7 days")),
        "{:?}",
        p.warnings
    );
    assert_eq!(p.expiring, 1);
}

#[test]
fn mtls_peers_must_be_typed() {
    let e = errors(
        r#"{"triggers":[{"id":"a","secret":"s","mtls":{"required":true,"allowed_peers":["spiffe://x"]},"action":{"agent_id":"x"}}]}"#,
    );
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("triggers[0].mtls.allowed_peers[0]: must be typed"), "{e:?}");
}

const SDS: &str = r#"{"triggers": [{"id": "t", "secrets": [{"sds": "combo_hmac", "not_after": 4102444800}],
    "action": {"agent_id": "a"}}]}"#;

fn with_sds(json: &str, value: SdsValue) -> Result<Compiled, Vec<ConfigError>> {
    let lookup = |name: &str| if name == "combo_hmac" { value.clone() } else { SdsValue::Refused };
    compile(raw::parse_json(json).unwrap(), Sources { env: &no_env, sds: Some(&lookup) }, NOW)
}

fn sds_keys(value: SdsValue) -> (Vec<String>, Vec<String>) {
    match with_sds(SDS, value).unwrap() {
        Compiled::Inbound(p) => (p.triggers["t"].keys.iter().map(|k| k.key_id.clone()).collect(), p.warnings),
        Compiled::Outbound(_) => panic!("not inbound"),
    }
}

#[test]
fn an_sds_secret_holds_one_key_per_line_newest_first() {
    let (ids, warnings) = sds_keys(SdsValue::Value("new\r\n\nold\n".into()));
    assert_eq!(ids, ["combo_hmac", "combo_hmac.1"]);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn an_sds_secret_not_delivered_yet_leaves_no_key_and_a_warning() {
    let (ids, warnings) = sds_keys(SdsValue::Pending);
    assert!(ids.is_empty());
    assert_eq!(
        warnings,
        ["triggers[0].secrets[0].sds: secret \"combo_hmac\" not delivered yet; deliveries fail closed until it is"]
    );
}

#[test]
fn a_bad_sds_line_is_skipped_without_quoting_it() {
    let json = SDS.replace(r#""id": "t","#, r#""id": "t", "source": "github", "scheme": {"secret_encoding": "hex"},"#);
    let Compiled::Inbound(p) = with_sds(&json, SdsValue::Value("zz-not-hex\n6b6579\n".into())).unwrap() else {
        panic!("not inbound")
    };
    assert_eq!(p.triggers["t"].keys.len(), 1);
    assert_eq!(p.triggers["t"].keys[0].key_id, "combo_hmac.1");
    assert!(p.warnings.iter().any(|w| w.contains("line 1 of secret \"combo_hmac\"")), "{:?}", p.warnings);
    assert!(!p.warnings.iter().any(|w| w.contains("zz-not-hex")));
}

#[test]
fn sds_without_the_native_module_names_the_field() {
    assert_eq!(
        errors(SDS),
        ["triggers[0].secrets[0].sds: SDS secrets need the native module (the .wasm reads value or env)"]
    );
}

#[test]
fn a_refused_subscription_names_the_field() {
    let errors: Vec<String> = with_sds(SDS, SdsValue::Refused).unwrap_err().iter().map(|e| e.to_string()).collect();
    assert_eq!(errors, ["triggers[0].secrets[0].sds: Envoy refused the SDS subscription to \"combo_hmac\""]);
}
