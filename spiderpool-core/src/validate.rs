//! Admission rules.
mod field;
pub use field::{FieldError, FieldErrorKind};
