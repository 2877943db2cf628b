//! StorePulse core: the event model every other crate speaks.
//!
//! This crate implements version 1 of the store event contract
//! (`shared/contract/EVENTS.md`): the typed [`Event`], the strict
//! [`EventParser`] that turns one JSON object into an `Event` or a
//! [`Rejection`] naming the field and the rule, and the store master data
//! ([`StoreMaster`]) that validation checks `store_id` against.
//!
//! It also holds the small contracts shared by the runtime and its
//! connectors: [`source::EventSource`], the log-reading side that the embedded
//! event log implements today and the Kafka source implements later.
//!
//! Layout:
//! - [`event`]: the validated, typed event.
//! - [`parse`]: wire format -> `Event`, with rejection reasons.
//! - [`stores`]: store master data and great-circle distances.
//! - [`time`]: event-time helpers (nanosecond timestamps, China calendar days).
//! - [`source`]: the trait processors' input comes through.
//! - [`error`]: this crate's error enum.

pub mod dead_letter;
pub mod dedup;
pub mod error;
pub mod event;
pub mod latency;
pub mod parse;
pub mod source;
pub mod stores;
pub mod time;

pub use error::{Error, Result, RetryHint};
pub use event::*;
pub use parse::{EventParser, Rejection};
pub use stores::{Store, StoreIdx, StoreMaster};
pub use time::Ts;
