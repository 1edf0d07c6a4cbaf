//! Kubernetes-style field errors.

use std::fmt;

/// The kind of a field error, as Kubernetes names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// `Invalid value`.
    Invalid,
    /// `Unsupported value`.
    NotSupported,
    /// `Forbidden`.
    Forbidden,
    /// `Required value`.
    Required,
    /// `Duplicate value` (an object of that name exists already).
    AlreadyExists,
    /// `Internal error`.
    Internal,
}

impl FieldErrorKind {
    fn label(self) -> &'static str {
        match self {
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::AlreadyExists => "Duplicate value",
            FieldErrorKind::Internal => "Internal error",
        }
    }
}

/// One refused field: its path (`spec.ips[2]`), the offending value and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// What kind of refusal.
    pub kind: FieldErrorKind,
    /// JSON path of the field, e.g. `spec.gateway`.
    pub path: String,
    /// The offending value as text (empty when there is none, e.g. a missing field).
    pub value: String,
    /// Why it is refused, in Spiderpool's words.
    pub detail: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(
        kind: FieldErrorKind,
        path: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            kind,
            path: path.into(),
            value: value.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FieldErrorKind::Forbidden | FieldErrorKind::Required | FieldErrorKind::Internal
                if self.value.is_empty() =>
            {
                write!(f, "{}: {}: {}", self.path, self.kind.label(), self.detail)
            }
            // Kubernetes prints unsupported values bare (`Unsupported value: 976: …`).
            FieldErrorKind::NotSupported => write!(
                f,
                "{}: {}: {}: {}",
                self.path,
                self.kind.label(),
                self.value,
                self.detail
            ),
            _ => write!(
                f,
                "{}: {}: {:?}: {}",
                self.path,
                self.kind.label(),
                self.value,
                self.detail
            ),
        }
    }
}
