//! The payload as minijinja sees it, converted lazily: a template that reads
//! three fields of a 1 MiB document converts three fields, not the document.

use std::sync::{Arc, OnceLock};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use serde_json::Value as Json;

/// A JSON container inside the shared document, addressed by a JSON pointer.
#[derive(Debug)]
struct Node {
    root: Arc<Json>,
    pointer: String,
    /// The nodes of the whole document, counted once per delivery for the
    /// work budget of `jsonpath()` (only the root's is ever used).
    size: OnceLock<u64>,
}

impl Node {
    fn get(&self) -> &Json {
        self.root.pointer(&self.pointer).unwrap_or(&Json::Null)
    }

    fn child(&self, segment: &str, value: &Json) -> Value {
        let escaped = segment.replace('~', "~0").replace('/', "~1");
        wrap(&self.root, value, format!("{}/{escaped}", self.pointer))
    }
}

impl Object for Node {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.get() {
            Json::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match self.get() {
            Json::Object(map) => {
                let k = key.as_str()?;
                map.get(k).map(|v| self.child(k, v))
            }
            Json::Array(items) => {
                let i = i64::try_from(key.clone()).ok()?;
                let len = i64::try_from(items.len()).ok()?;
                let i = usize::try_from(if i < 0 { len + i } else { i }).ok()?;
                items.get(i).map(|v| self.child(&i.to_string(), v))
            }
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.get() {
            Json::Object(map) => Enumerator::Values(map.keys().map(|k| Value::from(k.as_str())).collect()),
            Json::Array(items) => Enumerator::Seq(items.len()),
            _ => Enumerator::Empty,
        }
    }
}

/// The whole document as a lazy minijinja value.
pub fn document(root: &Arc<Json>) -> Value {
    wrap(root, root, String::new())
}

fn wrap(root: &Arc<Json>, v: &Json, pointer: String) -> Value {
    match v {
        Json::Object(_) | Json::Array(_) => {
            Value::from_object(Node { root: Arc::clone(root), pointer, size: OnceLock::new() })
        }
        scalar => super::json_to_minijinja(scalar),
    }
}

/// The document itself when `v` is the whole payload, and how many nodes it
/// has (itself included).
pub fn root_and_size(v: &Value) -> Option<(Arc<Json>, u64)> {
    let node = v.downcast_object_ref::<Node>()?;
    if !node.pointer.is_empty() {
        return None;
    }
    let size = *node.size.get_or_init(|| count(&node.root));
    Some((Arc::clone(&node.root), size))
}

fn count(v: &Json) -> u64 {
    1 + match v {
        Json::Array(items) => items.iter().map(count).sum(),
        Json::Object(map) => map.values().map(count).sum(),
        _ => 0,
    }
}
