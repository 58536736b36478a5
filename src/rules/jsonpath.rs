//! RFC 9535 JSONPath queries (serde_json_path), compiled once at configure
//! time for `match` and the inputs.

use serde_json_path::JsonPath;

/// Compiles a query; the error names what is wrong with it.
pub fn compile(text: &str) -> Result<JsonPath, String> {
    JsonPath::parse(text).map_err(|e| e.to_string())
}
