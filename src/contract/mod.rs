//! What the outside world sees of the filter: error codes and their answers,
//! header names, the audit record, the counters. The book's docs "Contract"
//! section is the prose form of this module.

pub mod audit;
pub mod error;
pub mod metrics;
pub mod names;
pub mod number;
