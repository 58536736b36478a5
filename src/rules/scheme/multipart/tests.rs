//! Unit tests of the multipart reader.

use super::*;
use serde_json::json;

const CT: &str = "multipart/form-data; boundary=XyZ";

/// A body of `parts` (headers, content) under boundary `XyZ`.
fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (head, content) in parts {
        out.extend_from_slice(b"--XyZ\r\n");
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--XyZ--\r\n");
    out
}

fn text(name: &str) -> String {
    format!("Content-Disposition: form-data; name=\"{name}\"")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn text_fields_and_files() {
    let file = b"\x00\x01binary\r\n--Xy not a delimiter\xff";
    let b = body(&[
        (&text("action"), b"escalated"),
        (
            "Content-Disposition: form-data; name=\"doc\"; filename=\"r\\\"1.pdf\"\r\nContent-Type: application/pdf",
            file,
        ),
        (&text("tag"), b"a"),
        (&text("tag"), b"b"),
        (&text("empty"), b""),
    ]);
    let v = to_json(CT, &b).unwrap();
    assert_eq!(
        v,
        json!({
            "action": "escalated",
            "doc": {"filename": "r\"1.pdf", "content_type": "application/pdf", "size": file.len(), "sha256": sha256_hex(file)},
            "tag": ["a", "b"],
            "empty": "",
        })
    );
}

#[test]
fn a_file_without_type_and_a_long_text_field_are_summarised() {
    let long = vec![b'x'; MAX_TEXT_FIELD_BYTES + 1];
    let just = vec![b'y'; MAX_TEXT_FIELD_BYTES];
    let b = body(&[
        ("Content-Disposition: form-data; name=f; filename=a.txt", b"hi"),
        (&text("long"), &long),
        (&text("just"), &just),
    ]);
    let v = to_json(CT, &b).unwrap();
    assert_eq!(v["f"], json!({"filename": "a.txt", "content_type": null, "size": 2, "sha256": sha256_hex(b"hi")}));
    assert_eq!(
        v["long"],
        json!({"filename": null, "content_type": null, "size": long.len(), "sha256": sha256_hex(&long)})
    );
    assert_eq!(v["just"].as_str().map(str::len), Some(MAX_TEXT_FIELD_BYTES));
}

#[test]
fn boundary_parameter() {
    assert_eq!(boundary("multipart/form-data; boundary=abc").as_deref(), Ok("abc"));
    assert_eq!(boundary("multipart/form-data;boundary=\"a b:c?\"; charset=x").as_deref(), Ok("a b:c?"));
    assert_eq!(boundary("Multipart/Form-Data; charset=\"x;y\"; BOUNDARY = q").as_deref(), Ok("q"));
    let seventy = "b".repeat(70);
    assert_eq!(boundary(&format!("multipart/form-data; boundary={seventy}")), Ok(seventy.clone()));
    for bad in [
        "multipart/form-data".to_string(),
        "multipart/form-data; boundary=".to_string(),
        "multipart/form-data; boundary=\"\"".to_string(),
        format!("multipart/form-data; boundary={seventy}b"),
        "multipart/form-data; boundary=\"ends \"".to_string(),
        "multipart/form-data; boundary=a{b".to_string(),
        "multipart/form-data; boundary=\"unclosed".to_string(),
        "multipart/form-data; boundary=a; boundary=a".to_string(),
        "multipart/form-data; boundary=a junk=1".to_string(),
    ] {
        assert_eq!(boundary(&bad), Err(MultipartError::Boundary), "{bad}");
    }
}

#[test]
fn quoted_boundary_reads_the_body() {
    let b = b"--a b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a b--";
    assert_eq!(to_json("multipart/form-data; boundary=\"a b\"", b), Ok(json!({"x": "1"})));
}

#[test]
fn preamble_epilogue_and_padding() {
    let b = b"preamble\r\nmore\r\n--XyZ \t\r\nContent-Disposition: form-data; name=x\r\nX-Other: y\r\n\r\n1\r\n--XyZ--  \r\nepilogue --XyZ\r\n";
    assert_eq!(to_json(CT, b), Ok(json!({"x": "1"})));
    // Content that only starts like a delimiter does not end the part.
    let b = b"--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\nline\n--XyZ\r--XyZ\r\n--XyZ--";
    assert_eq!(to_json(CT, b), Ok(json!({"x": "line\n--XyZ\r--XyZ"})));
    // A part whose content keeps its own CRLFs, only the last one belongs to the delimiter.
    let b = body(&[(&text("x"), b"\r\na\r\n\r\n")]);
    assert_eq!(to_json(CT, &b), Ok(json!({"x": "\r\na\r\n\r\n"})));
}

#[test]
fn malformed_bodies() {
    let cases: &[(&[u8], MultipartError)] = &[
        (b"", MultipartError::NoDelimiter),
        (b"no delimiter at all", MultipartError::NoDelimiter),
        (b"x--XyZ\r\n", MultipartError::NoDelimiter),
        (b"--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1", MultipartError::Unclosed),
        (b"--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZ", MultipartError::Unclosed),
        (b"--XyZ", MultipartError::Unclosed),
        (b"--XyZX\r\n", MultipartError::Delimiter),
        (b"--XyZ\nContent-Disposition: form-data; name=x\n\n1\n--XyZ--", MultipartError::Delimiter),
        (b"--XyZ\r\nContent-Disposition: form-data; name=x\r\n1\r\n--XyZ--", MultipartError::Header),
        (b"--XyZ\r\nContent-Disposition: form-data;\r\n name=x\r\n\r\n1\r\n--XyZ--", MultipartError::Header),
        (b"--XyZ\r\nNo colon\r\n\r\n1\r\n--XyZ--", MultipartError::Header),
        (b"--XyZ\r\nBad name: 1\r\n\r\n1\r\n--XyZ--", MultipartError::Header),
        (b"--XyZ\r\nContent-Disposition: form-data; name=\xff\r\n\r\n1\r\n--XyZ--", MultipartError::Header),
        (
            b"--XyZ\r\nContent-Disposition: form-data; name=x\r\ncontent-disposition: form-data; name=y\r\n\r\n1\r\n--XyZ--",
            MultipartError::Header,
        ),
        (b"--XyZ\r\n\r\n1\r\n--XyZ--", MultipartError::Disposition),
        (b"--XyZ\r\nContent-Type: text/plain\r\n\r\n1\r\n--XyZ--", MultipartError::Disposition),
        (b"--XyZ\r\nContent-Disposition: attachment; name=x\r\n\r\n1\r\n--XyZ--", MultipartError::Disposition),
        (b"--XyZ\r\nContent-Disposition: form-data; filename=a\r\n\r\n1\r\n--XyZ--", MultipartError::Disposition),
        (b"--XyZ\r\nContent-Disposition: form-data; name=\"x\r\n\r\n1\r\n--XyZ--", MultipartError::Disposition),
    ];
    for (b, want) in cases {
        assert_eq!(to_json(CT, b), Err(*want), "{}", String::from_utf8_lossy(b));
        assert_eq!(want.reject(), Reject::InvalidMultipart);
    }
    assert_eq!(to_json("multipart/form-data", &body(&[(&text("x"), b"1")])), Err(MultipartError::Boundary));
}

#[test]
fn part_headers_are_bounded() {
    let pad = |n: usize| format!("{}\r\nX-Pad: {}", text("x"), "p".repeat(n));
    let fits = pad(MAX_PART_HEADER_BYTES - text("x").len() - "\r\nX-Pad: ".len());
    assert_eq!(fits.len(), MAX_PART_HEADER_BYTES);
    assert_eq!(to_json(CT, &body(&[(&fits, b"1")])), Ok(json!({"x": "1"})));
    let over = pad(MAX_PART_HEADER_BYTES);
    assert_eq!(to_json(CT, &body(&[(&over, b"1")])), Err(MultipartError::HeadersTooLarge));
    // A block that never ends is refused at the bound, however long the part.
    let mut endless = b"--XyZ\r\n".to_vec();
    endless.extend(std::iter::repeat_n(b'a', 4 * MAX_PART_HEADER_BYTES));
    endless.extend_from_slice(b"\r\n--XyZ--");
    assert_eq!(to_json(CT, &endless), Err(MultipartError::HeadersTooLarge));
}

#[test]
fn part_count_is_bounded_before_and_after() {
    let field = text("f");
    let at_bound = body(&vec![(field.as_str(), &b"v"[..]); MAX_FORM_FIELDS]);
    assert!(parts_within_bound(CT, &at_bound));
    let v = to_json(CT, &at_bound).unwrap();
    assert_eq!(v["f"].as_array().map(Vec::len), Some(MAX_FORM_FIELDS));
    let over = body(&vec![(field.as_str(), &b"v"[..]); MAX_FORM_FIELDS + 1]);
    assert!(!parts_within_bound(CT, &over));
    assert_eq!(to_json(CT, &over), Err(MultipartError::TooManyParts));
    assert_eq!(MultipartError::TooManyParts.reject(), Reject::TooManyFields);
    // Delimiters alone count, whatever lies between them; a preamble's first one too.
    let bare = format!("pre\r\n{}--XyZ--", "--XyZ\r\n\r\n".repeat(MAX_FORM_FIELDS + 1));
    assert!(!parts_within_bound(CT, bare.as_bytes()));
    let bare = format!("{}--XyZ--", "--XyZ\r\n\r\n".repeat(MAX_FORM_FIELDS));
    assert!(parts_within_bound(CT, bare.as_bytes()));
    // Nothing to count without a boundary: refused after the signature.
    assert!(parts_within_bound("multipart/form-data", &over));
}

#[test]
fn media_type_is_recognised() {
    let h = |v: &str| Headers::from_pairs([("content-type", v)]);
    assert!(is_multipart(&h("Multipart/Form-Data; boundary=x")));
    assert!(!is_multipart(&h("multipart/mixed; boundary=x")));
    assert!(!is_multipart(&h("application/x-www-form-urlencoded")));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A deterministic sweep: every prefix and every one-byte change of a
    // valid body, under a valid and an invalid boundary.
    let good = body(&[(&text("a"), b"1"), ("Content-Disposition: form-data; name=f; filename=\"x\"", b"\x00\xff")]);
    for ct in [CT, "multipart/form-data; boundary=\"", "multipart/form-data; boundary=Xy"] {
        for n in 0..=good.len() {
            let _ = to_json(ct, &good[..n]);
            assert!(parts_within_bound(ct, &good[..n]));
        }
        for i in 0..good.len() {
            for byte in [b'\r', b'\n', b'-', b'"', b';', 0xff] {
                let mut b = good.clone();
                b[i] = byte;
                if let Ok(v) = to_json(ct, &b) {
                    assert!(v.is_object());
                }
            }
        }
    }
}

#[test]
fn form_sorted_never_covers_a_multipart_body() {
    // `{form_sorted}` is forms only: a scheme that signs nothing else and
    // takes multipart needs `body_digest`, as for any body that is not a form.
    let raw = |types: serde_json::Value| {
        serde_json::from_value::<crate::rules::scheme::raw::RawScheme>(json!({
            "algorithm": "hmac-sha256", "signature": {"header": "x-s"},
            "signed": "{url}{form_sorted}", "content_types": types}))
        .unwrap()
    };
    let err = crate::rules::scheme::compile("custom", raw(json!([MULTIPART_MEDIA_TYPE])), 300).unwrap_err();
    assert_eq!(err.field, "content_types");
    assert!(crate::rules::scheme::compile("custom", raw(json!([super::super::form::FORM_MEDIA_TYPE])), 300).is_ok());
    // With `{body}` signed, a multipart-only scheme compiles.
    let mut signed = raw(json!([MULTIPART_MEDIA_TYPE]));
    signed.signed = Some("{body}".into());
    assert!(crate::rules::scheme::compile("custom", signed, 300).is_ok());
}
