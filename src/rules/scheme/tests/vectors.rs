//! Providers' own vectors and batch rules, through the presets: Twilio's
//! SDK, Adyen's SDK, Microsoft Graph batches, Box's offset timestamps.

use super::*;

/// Microsoft Graph batches: every notification's clientState must be a
/// valid key's, not only the first one's.
#[test]
fn every_notification_of_a_graph_batch_is_checked() {
    let s = preset("microsoft_graph");
    let old = Key::new(
        "old".into(),
        KeyMaterial::secret(Algorithm::Token, "old-state", s.secret_encoding).unwrap(),
        None,
        None,
    );
    let new = Key::new(
        "new".into(),
        KeyMaterial::secret(Algorithm::Token, "new-state", s.secret_encoding).unwrap(),
        None,
        None,
    );
    let keys = [old, new];
    let batch = |states: &[&str]| {
        let value: Vec<_> = states.iter().map(|c| serde_json::json!({"clientState": c, "resource": "r"})).collect();
        serde_json::to_vec(&serde_json::json!({ "value": value })).unwrap()
    };
    let ok = |body: &[u8]| check(&s, &keys, &[], body, NOW);
    assert!(ok(&batch(&["new-state", "new-state"])).is_ok());
    assert!(ok(&batch(&["old-state", "new-state"])).is_ok(), "a batch across a rotation: each state is valid");
    assert_eq!(ok(&batch(&["new-state", "forged"])), Err(Reject::SignatureMismatch), "the last one is checked too");
    assert_eq!(ok(&batch(&["forged", "new-state"])), Err(Reject::SignatureMismatch));
    let missing = br#"{"value":[{"clientState":"new-state"},{"resource":"r"}]}"#;
    assert_eq!(ok(missing), Err(Reject::MissingSignature), "a notification without clientState");
    assert_eq!(ok(br#"{"value":[]}"#), Err(Reject::MissingSignature));
}

/// twilio-python's own vectors (tests/unit/test_request_validator.py,
/// auth token "12345"): form parameters, the default ports, and a JSON
/// body signed through `?bodySHA256=` in the URL.
#[test]
fn twilio_sdk_vectors() {
    let twilio = |public_url: &str| {
        let raw: raw::RawScheme = serde_json::from_value(serde_json::json!({ "public_url": public_url })).unwrap();
        resolve_scheme(Some("twilio"), Some(raw), false, 300).unwrap()
    };
    let form = "CallSid=CA1234567890ABCDE&Digits=1234&From=%2B14158675309&To=%2B18005551212&Caller=%2B14158675309";
    let path = "/myapp.php?foo=1&bar=2";
    let post = |s: &Scheme, path: &str, ct: &str, sig: &str, body: &[u8]| {
        let headers: [(&str, &str); 3] = [(":path", path), ("content-type", ct), ("x-twilio-signature", sig)];
        let mut pairs = vec![(":method", "POST")];
        pairs.extend_from_slice(&headers);
        let h = Headers::from_pairs(pairs);
        let mut creds = s.read_head(&h)?;
        s.read_body(&mut creds, body)?;
        use sha2::Digest;
        s.body_digest_holds(&h, &sha2::Sha256::digest(body).into())?;
        let keys = key(s, "12345");
        s.verify(&creds, &Request { headers: &h, body }, &keys, NOW).map(|_| ()).ok_or(Reject::SignatureMismatch)
    };
    const FORM: &str = "application/x-www-form-urlencoded";
    for base in ["https://mycompany.com", "https://mycompany.com:443"] {
        let s = twilio(base);
        assert_eq!(post(&s, path, FORM, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", form.as_bytes()), Ok(()), "{base}");
        assert_eq!(post(&s, path, FORM, "kvajT1Ptam85bY51eRf/AJRuM3w=", form.as_bytes()), Ok(()), "{base} :443");
    }
    let s = twilio("http://mycompany.com:80");
    assert_eq!(post(&s, path, FORM, "0ZXoZLH/DfblKGATFgpif+LLRf4=", form.as_bytes()), Ok(()));
    let s = twilio("http://mycompany.com:1234");
    assert_eq!(post(&s, path, FORM, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", form.as_bytes()), Ok(()));
    let multi = "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234";
    let s = twilio("https://mycompany.com");
    assert_eq!(post(&s, path, FORM, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", multi.as_bytes()), Ok(()));

    let body = br#"{"property": "value", "boolean": true}"#;
    let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    let json_path = format!("{path}&bodySHA256={hash}");
    const JSON: &str = "application/json";
    assert_eq!(post(&s, &json_path, JSON, "a9nBmqA0ju/hNViExpshrM61xv4=", body), Ok(()));
    let changed = br#"{"property": "valuE", "boolean": true}"#;
    assert_eq!(post(&s, &json_path, JSON, "a9nBmqA0ju/hNViExpshrM61xv4=", changed), Err(Reject::SignatureMismatch));
    assert_eq!(post(&s, path, JSON, "a9nBmqA0ju/hNViExpshrM61xv4=", body), Err(Reject::MissingSignature));
    let other = format!("{path}&bodySHA256={}", "0".repeat(64));
    assert_eq!(post(&s, &other, JSON, "a9nBmqA0ju/hNViExpshrM61xv4=", body), Err(Reject::SignatureMismatch));
}

#[test]
fn rfc3339_timestamps_with_an_offset() {
    let at = |t: &str| parse_stamp(t, TimeUnit::Rfc3339).map(|s| s.unix);
    assert_eq!(at("2020-01-01T07:00:00Z"), Ok(1_577_862_000));
    assert_eq!(at("2020-01-01T00:00:00-07:00"), Ok(1_577_862_000), "Box's example");
    assert_eq!(at("2020-01-01T09:30:00+02:30"), Ok(1_577_862_000));
    assert_eq!(at("2020-01-01T07:00:00.5+00:00"), Ok(1_577_862_000));
    for bad in
        ["2020-01-01T00:00:00-7:00", "2020-01-01T00:00:00-24:00", "2020-01-01T00:00:00*07:00", "2020-01-01", "-07:00"]
    {
        assert_eq!(at(bad), Err(Reject::MalformedTimestamp), "{bad}");
    }
}

/// Adyen's own SDK vector (adyen-python-api-library test/UtilTest.py): the
/// item's fields joined by `:`, an absent field empty; and a batch of two
/// items is refused (the second would reach the backend unverified).
#[test]
fn adyen_sdk_vector() {
    let s = preset("adyen");
    let keys = key(&s, "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056");
    let item = |sig: &str| {
        serde_json::json!({"NotificationRequestItem": {
            "pspReference": "7914073381342284", "merchantReference": "TestPayment-1407325143704",
            "merchantAccountCode": "TestMerchant", "amount": {"currency": "EUR", "value": 1130},
            "eventCode": "AUTHORISATION", "success": "true", "additionalData": {"hmacSignature": sig}}})
    };
    let body = |items: Vec<serde_json::Value>| {
        serde_json::to_vec(&serde_json::json!({"live": "false", "notificationItems": items})).unwrap()
    };
    const SIG: &str = "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0=";
    assert_eq!(check(&s, &keys, &[], &body(vec![item(SIG)]), NOW), Ok(None));
    let mut changed = item(SIG);
    changed["NotificationRequestItem"]["amount"]["value"] = 1131.into();
    assert_eq!(check(&s, &keys, &[], &body(vec![changed]), NOW), Err(Reject::SignatureMismatch));
    assert_eq!(check(&s, &keys, &[], &body(vec![item(SIG), item(SIG)]), NOW), Err(Reject::MalformedSignature));
    assert_eq!(check(&s, &keys, &[], &body(vec![]), NOW), Err(Reject::MissingSignature));
}
