//! # rewinddb-replay
//!
//! Replay, verify, step and diff runs (under construction).

#![deny(unsafe_code)]
