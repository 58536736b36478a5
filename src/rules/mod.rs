//! The domain rules, pure functions over plain data: signature schemes and
//! secrets, allowlists and peers, paths, match, inputs, annotations and the
//! replay protocol. Nothing here talks to a proxy.

pub(crate) mod allowlist;
pub(crate) mod annotate;
pub mod ending;
pub mod inputs;
pub mod jsonpath;
pub(crate) mod matcher;
pub(crate) mod paths;
pub(crate) mod peer;
pub mod replay;
pub(crate) mod replay_etcd;
pub mod scheme;
