//! The raw configuration: shapes, field paths, Struct doubles.

use super::*;

#[test]
fn struct_doubles_are_integers() {
    let c = parse_json(r#"{"max_body_bytes": 2048.0, "timestamp_tolerance_seconds": 300}"#).unwrap();
    assert_eq!(c.max_body_bytes, Some(2048));
    assert_eq!(c.timestamp_tolerance_seconds, Some(300));
}

#[test]
fn fractional_number_is_refused_with_path() {
    let e = parse_json(
        r#"{"triggers":[{"id":"a","secret":"s","action":{"agent_id":"x"},
        "secrets":[{"value":"v","not_after":1.5}]}]}"#,
    )
    .unwrap_err();
    assert!(e.path.starts_with("triggers[0].secrets[0].not_after"), "{e}");
}

#[test]
fn unknown_field_is_refused_with_path() {
    let e = parse_json(r#"{"triggers":[{"id":"a","action":{"agent_id":"x","inptus":{}}}]}"#).unwrap_err();
    assert_eq!(e.path, "triggers[0].action.inptus");
    assert!(e.message.contains("inptus"), "{e}");
}

#[test]
fn match_is_one_or_many() {
    let c = parse_json(
        r#"{"triggers":[
          {"id":"a","action":{"agent_id":"x"},"match":{"jsonpath":"$.a"}},
          {"id":"b","action":{"agent_id":"x"},"match":[{"jsonpath":"$.a"},{"jsonpath":"$.b","exists":false}]}
        ]}"#,
    )
    .unwrap();
    let t: Vec<_> = c
        .triggers
        .into_iter()
        .map(|t| match t.match_.unwrap() {
            OneOrMany::One(_) => 1,
            OneOrMany::Many(v) => v.len(),
        })
        .collect();
    assert_eq!(t, vec![1, 2]);
}

#[test]
fn error_inside_match_list_keeps_path() {
    let e = parse_json(
        r#"{"triggers":[{"id":"a","action":{"agent_id":"x"},"match":[{"jsonpath":"$.a"},{"jsonpath":"$.b","exits":true}]}]}"#,
    )
    .unwrap_err();
    assert!(e.path.starts_with("triggers[0].match[1]"), "{e}");
}

#[test]
fn bad_enum_value_names_field() {
    let e = parse_json(r#"{"on_no_match":"drop"}"#).unwrap_err();
    assert_eq!(e.path, "on_no_match");
}

#[test]
fn json_starting_with_newline_is_json() {
    let c = parse_plugin_bytes(b"\n{\"max_body_bytes\": 10}").unwrap();
    assert_eq!(c.max_body_bytes, Some(10));
    let e = parse_plugin_bytes(b"\n{\"max_body_bytez\": 10}").unwrap_err();
    assert_eq!(e.path, "max_body_bytez");
    assert!(parse_plugin_bytes(b"\xff\xfe").is_err());
}

#[test]
fn empty_is_default() {
    let c = parse_json("  ").unwrap();
    assert_eq!(c.mode, Mode::Inbound);
    assert!(c.triggers.is_empty());
}
