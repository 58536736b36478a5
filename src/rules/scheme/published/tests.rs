use super::*;

fn source(raw: serde_json::Value) -> Result<Option<KeySource>, SchemeError> {
    compile(Some(serde_json::from_value(raw).unwrap()), Algorithm::RsaSha256)
}

fn sns() -> KeySource {
    source(serde_json::json!({
        "url_from": {"json": "/SigningCertURL", "hosts": ["sns.{region}.amazonaws.com", "sns.{region}.amazonaws.com.cn"],
                     "path_suffix": ".pem"},
        "cluster": "keys"
    }))
    .unwrap()
    .unwrap()
}

fn sent(url: &str) -> Credentials {
    Credentials { key_url: Some(url.to_string()), ..Credentials::default() }
}

#[test]
fn a_sent_url_is_trusted_only_on_a_pinned_host() {
    let s = sns();
    let ok =
        s.locate(&sent("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"), &Params::default());
    assert_eq!(ok.unwrap().url.host, "sns.us-east-1.amazonaws.com");
    assert!(s.locate(&sent("https://sns.cn-north-1.amazonaws.com.cn/x.pem"), &Params::default()).is_ok());
    assert!(s.locate(&sent("https://sns.us-gov-west-1.amazonaws.com/x.pem"), &Params::default()).is_ok());
    for bad in [
        "http://sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com@evil.example/x.pem",
        "https://sns.a.b.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem?y=1",
        "https://sns.us-east-1.amazonaws.com/../x.pem",
        "https://sns.us-east-1.amazonaws.com/%2e%2e/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.txt",
        "https://sns.us-east-1.amazonaws.com\\@evil.example/x.pem",
        "sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.s3.amazonaws.com/x.pem",
        "https://sns.s3-external-1.amazonaws.com/x.pem",
        "https://sns.us-east.amazonaws.com/x.pem",
    ] {
        assert_eq!(s.locate(&sent(bad), &Params::default()), Err(Reject::UntrustedKeyUrl), "{bad}");
    }
    assert_eq!(s.locate(&Credentials::default(), &Params::default()), Err(Reject::MissingSignature));
}

#[test]
fn host_patterns_keep_their_registrable_end() {
    for bad in ["*.com", "sns.*", "*.*", "sns.*.*", "", "a..b"] {
        let raw = serde_json::json!({"url_from": {"header": "x-cert", "hosts": [bad]}, "cluster": "k"});
        assert_eq!(source(raw).unwrap_err().field, "key.url_from.hosts", "{bad}");
    }
}

#[test]
fn a_configured_source_and_its_post_body() {
    let raw = serde_json::json!({
        "url": "https://production.plaid.com/webhook_verification_key/get", "format": "jwk", "jwk_at": "/key",
        "post": "{\"client_id\":\"{param:client_id}\",\"secret\":\"{param:secret}\",\"key_id\":\"{kid}\"}",
        "cluster": "plaid"
    });
    let s = compile(Some(serde_json::from_value(raw).unwrap()), Algorithm::JwtEs256).unwrap().unwrap();
    assert_eq!(s.params(), vec!["client_id".to_string(), "secret".to_string()]);
    let params =
        Params([("client_id".to_string(), "c".to_string()), ("secret".to_string(), "s\"x".to_string())].into());
    let creds = Credentials { kid: Some("k\"1".to_string()), ..Credentials::default() };
    let f = s.locate(&creds, &params).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&f.post.unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"client_id": "c", "secret": "s\"x", "key_id": "k\"1"}),
        "values stay inside their strings"
    );
    let other = Credentials { kid: Some("k2".to_string()), ..Credentials::default() };
    assert_ne!(s.locate(&other, &params).unwrap().cache_key, f.cache_key, "one entry per kid");
    let other_account =
        Params([("client_id".to_string(), "c2".to_string()), ("secret".to_string(), "s".to_string())].into());
    assert_ne!(s.locate(&creds, &other_account).unwrap().cache_key, f.cache_key, "one entry per account");
    assert!(!format!("{params:?}").contains("s\\\"x"), "params never print their values");
}

#[test]
fn only_public_key_algorithms_fetch() {
    let raw: RawKeySource =
        serde_json::from_value(serde_json::json!({"url": "https://k.example.com/jwks", "cluster": "k"})).unwrap();
    assert_eq!(compile(Some(raw), Algorithm::HmacSha256).unwrap_err().field, "key");
}

/// AWS's own SNS validator's vectors (tests/data/aws_sns): four signed
/// notifications, SHA1withRSA and SHA256withRSA, with and without Subject,
/// verified through the `aws_sns` preset with the key read from AWS's
/// certificate.
#[test]
fn aws_sns_published_vectors_verify() {
    use crate::host::Headers;
    use crate::rules::scheme::{keys::Key, Request};
    let pem = include_bytes!("../../../../tests/data/aws_sns/certificate.pem");
    let fixtures: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../../../../tests/data/aws_sns/http_fixtures.json")).unwrap();
    // The certificate was valid from 2021-09-07 to 2022-08-17.
    let in_2022 = 1_659_000_000;
    assert!(keys_from(KeyFormat::Certificate, None, pem, 1_800_000_000).is_none(), "an expired certificate");
    let mut found = keys_from(KeyFormat::Certificate, None, pem, in_2022).unwrap();
    assert_eq!(found.len(), 1);
    let (kid, material) = found.remove(0);
    assert_eq!(kid, None);
    let keys = [Key::new("aws".into(), material, None, None)];
    let scheme = crate::plan::inbound::resolve_scheme(Some("aws_sns"), None, false, 300).unwrap();
    let headers = Headers::from_pairs([(":method", "POST"), ("content-type", "text/plain; charset=UTF-8")]);
    let run = |body: &[u8]| {
        let mut creds = scheme.read_head(&headers).unwrap();
        scheme.read_body(&mut creds, body)?;
        let url = scheme.key_source.as_ref().unwrap().locate(&creds, &scheme.params)?.url;
        assert_eq!(url.host, "sns.us-east-2.amazonaws.com");
        scheme
            .verify(&creds, &Request { headers: &headers, body }, &keys, in_2022)
            .map(|_| ())
            .ok_or(Reject::SignatureMismatch)
    };
    assert_eq!(fixtures.len(), 4);
    for f in &fixtures {
        let body = serde_json::to_vec(f).unwrap();
        assert_eq!(run(&body), Ok(()), "{}", f["MessageId"]);
        let mut changed = f.clone();
        changed["Message"] = "Hello World".into();
        assert_eq!(run(&serde_json::to_vec(&changed).unwrap()), Err(Reject::SignatureMismatch));
        let mut downgraded = f.clone();
        downgraded["SignatureVersion"] = if f["SignatureVersion"] == "1" { "2" } else { "1" }.into();
        assert_eq!(run(&serde_json::to_vec(&downgraded).unwrap()), Err(Reject::SignatureMismatch), "the other hash");
        let mut unknown = f.clone();
        unknown["SignatureVersion"] = "3".into();
        assert_eq!(run(&serde_json::to_vec(&unknown).unwrap()), Err(Reject::MalformedSignature));
    }
}
