//! Shared by the property tests of every crate (included with `#[path]`):
//! how many cases a property runs.

/// `PROPTEST_CASES` when set (a longer soak run), else `default`: a literal
/// `cases` in the config would override the variable.
pub fn cases_or(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
