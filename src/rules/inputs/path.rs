//! A fast path for the most common input, a plain lookup such as
//! `{{ payload.ticket.id }}` or `{{ headers["x-request-id"] }}`: evaluated
//! straight on the JSON, without building a template context. Anything
//! else goes through minijinja. Both give the same value (tested below).

use super::RenderContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Payload,
    Headers,
    Trigger,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathExpr {
    root: Root,
    segs: Vec<Seg>,
}

fn ident_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.first().is_none_or(|c| !(c.is_ascii_alphabetic() || *c == b'_')) {
        return 0;
    }
    b.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count()
}

/// `Some` when `expr` is `root(.ident | [int] | ["str"] | ['str'])*`.
pub fn parse(expr: &str) -> Option<PathExpr> {
    let n = ident_len(expr);
    let root = match &expr[..n] {
        "payload" => Root::Payload,
        "headers" => Root::Headers,
        "trigger" => Root::Trigger,
        _ => return None,
    };
    let mut rest = &expr[n..];
    let mut segs = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let n = ident_len(r);
            if n == 0 {
                return None;
            }
            segs.push(Seg::Key(r[..n].to_string()));
            rest = &r[n..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            let quoted = ['"', '\''].iter().find_map(|q| inner.strip_prefix(*q)?.strip_suffix(*q));
            match quoted {
                Some(key) if !key.contains(['"', '\'', '\\']) => segs.push(Seg::Key(key.to_string())),
                Some(_) => return None,
                None => segs.push(Seg::Index(inner.parse().ok()?)),
            }
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(PathExpr { root, segs })
}

fn step<'v>(v: &'v serde_json::Value, seg: &Seg) -> Option<&'v serde_json::Value> {
    match (v, seg) {
        (serde_json::Value::Object(m), Seg::Key(k)) => m.get(k),
        (serde_json::Value::Array(a), Seg::Index(i)) => {
            // try_from: on wasm32 a usize is 32 bits, and 2^32 must not wrap to 0.
            let idx = if *i < 0 {
                a.len().checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
            } else {
                usize::try_from(*i).ok()?
            };
            a.get(idx)
        }
        _ => None,
    }
}

impl PathExpr {
    /// The value, or null where the path is absent.
    pub fn eval(&self, ctx: &RenderContext) -> serde_json::Value {
        let string = |s: &str| serde_json::Value::String(s.to_string());
        match (self.root, self.segs.as_slice()) {
            (Root::Payload, segs) => {
                let mut v: &serde_json::Value = ctx.payload;
                for seg in segs {
                    match step(v, seg) {
                        Some(next) => v = next,
                        None => return serde_json::Value::Null,
                    }
                }
                v.clone()
            }
            (Root::Headers, [Seg::Key(k)]) => ctx.header(k).map_or(serde_json::Value::Null, string),
            (Root::Trigger, [Seg::Key(k)]) => match k.as_str() {
                "id" => string(ctx.trigger_id),
                "agent_id" => string(ctx.agent_id),
                "source" => string(ctx.source),
                _ => serde_json::Value::Null,
            },
            // Whole objects and deeper lookups are rare: minijinja's meaning is
            // kept by not taking the fast path for them (see `fast`).
            _ => serde_json::Value::Null,
        }
    }

    /// Whether `eval` covers this path (else the caller uses minijinja).
    pub fn fast(&self) -> bool {
        match self.root {
            Root::Payload => true,
            Root::Headers | Root::Trigger => matches!(self.segs.as_slice(), [Seg::Key(_)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_only_plain_lookups() {
        assert!(parse("payload.ticket.id").is_some());
        assert!(parse("payload[\"a b\"][0]['c'][-1]").is_some());
        assert!(parse("headers['x-request-id']").is_some());
        for e in
            ["payload.a | default(1)", "payload.a + 1", "payload.0", "payload[a]", "other.x", "payload.", "payloadx"]
        {
            assert!(parse(e).is_none(), "{e}");
        }
        assert!(parse("headers").is_some_and(|p| !p.fast()));
        assert!(parse("headers.a.b").is_some_and(|p| !p.fast()));
    }

    /// The fast path and minijinja agree on every shape of lookup.
    #[test]
    fn agrees_with_minijinja() {
        let payload = std::sync::Arc::new(
            json!({"a": {"b": [10, {"c": "x"}, null], "n": 1.5, "s": "str", "u": "Zoë"}, "a b": true, "0": "zero"}),
        );
        let headers = crate::host::Headers::from_pairs([("x-request-id", "r1"), ("x-sig", "s"), (":path", "/p")]);
        let ctx = RenderContext {
            payload: &payload,
            headers: &headers,
            hidden_headers: &["x-sig".to_string()],
            trigger_id: "t",
            agent_id: "ag",
            source: "generic_webhook",
        };
        let mj = ctx.to_minijinja();
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for e in [
            "payload",
            "payload.a",
            "payload.a.b",
            "payload.a.b[0]",
            "payload.a.b[1].c",
            "payload.a.b[-1]",
            "payload.a.b[7]",
            "payload.a.b[-9]",
            "payload.a.n",
            "payload.a.s.x",
            "payload.a.u",
            "payload['a b']",
            "payload[\"0\"]",
            "payload.nope.deeper",
            "payload.a.b.c",
            "headers['x-request-id']",
            "headers.nope",
            "headers['x-sig']",
            "headers[':path']",
            "trigger.id",
            "trigger.agent_id",
            "trigger.source",
            "trigger.nope",
        ] {
            let p = parse(e).unwrap_or_else(|| panic!("{e} not parsed"));
            assert!(p.fast(), "{e}");
            let expected = serde_json::to_value(env.compile_expression(e).unwrap().eval(mj.clone()).unwrap()).unwrap();
            assert_eq!(p.eval(&ctx), expected, "{e}");
        }
    }
}
