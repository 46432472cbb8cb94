//! # rewinddb-primitives
//!
//! KV, event log, state machine, trace store and run index as stateless
//! facades over engine transactions (under construction).

#![deny(unsafe_code)]
