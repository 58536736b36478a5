//! The domain rules, pure functions over plain data: signature schemes and
//! secrets, allowlists and peers, paths, match, inputs, annotations and the
//! replay protocol. Nothing here talks to a proxy.

pub mod allowlist;
pub mod annotate;
pub mod inputs;
pub mod jsonpath;
pub mod matcher;
pub mod paths;
pub mod peer;
pub mod replay;
pub mod replay_etcd;
pub mod secrets;
pub mod signature;
pub mod signing;
