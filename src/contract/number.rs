//! How the configuration language reads a number: a non-negative integer,
//! also as a double without a fraction (`300.0`, as a protobuf Struct hands
//! every number over). The bottom layer, so that the plan and the scheme
//! language both read numbers one way without importing each other.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// A non-negative integer, also accepted as a double with no fraction (`300.0`).
pub fn opt_uint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v).map(Some).map_err(|_| E::custom("out of range (expected a non-negative integer)"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // 2^53: beyond it a double no longer holds every integer exactly.
            // Never quote the number: the message names the field only.
            if !(v.is_finite() && (0.0..=9_007_199_254_740_992.0).contains(&v)) {
                Err(E::custom("out of range (expected a non-negative integer up to 2^53)"))
            } else if v.fract() != 0.0 {
                Err(E::custom("expected a non-negative integer, got a number with a fraction"))
            } else {
                Ok(Some(v as u64))
            }
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}
