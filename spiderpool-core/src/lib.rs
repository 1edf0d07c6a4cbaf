//! Spiderpool's IPAM model as a pure library.
#![deny(missing_docs)]

pub mod annotations;
pub mod error;
pub mod ip;
pub mod model;
pub mod table;
pub mod validate;

pub use error::Error;
