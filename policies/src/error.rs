//! Validation errors of a policy file: each carries the key path that is wrong, a kind (for
//! a metric label or a test) and a reason an operator can act on.

use std::fmt;

/// What is wrong with a policy file. Every variant is the operator's mistake (fix the file);
/// retrying never helps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyErrorKind {
    /// The text is not valid TOML (includes TOML's own duplicate-key error).
    Syntax,
    /// A key the policy format does not know.
    UnknownKey,
    /// A value of the wrong TOML type (a number where a string is expected, ...).
    InvalidType,
    /// A required key is absent.
    Missing,
    /// A value of the right type that is not one of the accepted values.
    BadValue,
    /// A duration string that does not parse (`"5 s"`, `"-1m"`, `"5"`).
    BadDuration,
    /// A duration that must be positive is zero.
    NonPositive,
    /// An operation glob that can never match an operation name.
    BadGlob,
    /// A tier name that no `[tiers.*]` table defines.
    UnknownTier,
    /// The default tier is not among the allowed tiers.
    DefaultNotAllowed,
    /// Two tiers whose names differ only in case.
    DuplicateTier,
    /// Two rules with the same `name`.
    DuplicateRule,
    /// A rule without any matcher (it would match every tenant; use `[default]` for that).
    EmptyMatcher,
    /// A key that does not apply here (e.g. `interval` on an `async` tier).
    Inapplicable,
    /// More tiers than the policy engine supports.
    TooMany,
}

impl PolicyErrorKind {
    /// snake_case name, for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        use PolicyErrorKind::*;
        match self {
            Syntax => "syntax",
            UnknownKey => "unknown_key",
            InvalidType => "invalid_type",
            Missing => "missing",
            BadValue => "bad_value",
            BadDuration => "bad_duration",
            NonPositive => "non_positive",
            BadGlob => "bad_glob",
            UnknownTier => "unknown_tier",
            DefaultNotAllowed => "default_not_allowed",
            DuplicateTier => "duplicate_tier",
            DuplicateRule => "duplicate_rule",
            EmptyMatcher => "empty_matcher",
            Inapplicable => "inapplicable",
            TooMany => "too_many",
        }
    }
}

impl fmt::Display for PolicyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in a policy file, displayed as `<key path>: <reason>`
/// (e.g. `rules[2].allowed_tiers[1]: unknown tier "platinum" (defined: bronze, gold)`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", if path.is_empty() { "<policy>" } else { path.as_str() })]
pub struct PolicyError {
    /// Dotted key path, with `[i]` for array items: `tiers.silver.interval`,
    /// `rules[3].deny[0].operation`. Empty for a whole-file syntax error.
    pub path: String,
    pub kind: PolicyErrorKind,
    pub reason: String,
}

/// Formats a list of errors one per line, as `drgw check-config` prints them.
pub fn format_errors(errors: &[PolicyError]) -> String {
    let mut out = String::new();
    for error in errors {
        out.push_str(&error.to_string());
        out.push('\n');
    }
    out
}

/// Collects errors during validation.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub(crate) Vec<PolicyError>);

impl Errors {
    pub(crate) fn push(&mut self, path: &str, kind: PolicyErrorKind, reason: impl Into<String>) {
        self.0.push(PolicyError {
            path: path.to_owned(),
            kind,
            reason: reason.into(),
        });
    }
}
