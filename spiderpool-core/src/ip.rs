//! IP addresses, ranges and sets.
//!
//! - [`IpFamily`]: IPv4 or IPv6, with Spiderpool's `ipVersion` numbers 4 and 6.
//! - [`IpRange`]: one entry of `spec.ips`, `spec.excludeIPs` or a ReservedIP's `spec.ips`:
//!   a single address (`10.6.0.1`) or an inclusive range (`10.6.0.1-10.6.0.9`).
//! - [`IpSet`]: an exact set of addresses of one family, stored as offsets from a base address
//!   (the subnet's network address) in `roaring` bitmaps, with whole runs of 2^32 addresses kept
//!   as intervals so that IPv6 sets of any size (a full /64, a /48, even `::/0`) stay small.
//! - [`IpCount`]: an exact address count (an IPv6 set can hold 2^128 addresses, one more than
//!   `u128::MAX`).
//! - [`parse_cidr`], [`parse_ip`]: Spiderpool's (Go's) parsing rules for CIDRs and addresses.

mod count;
mod family;
mod intervals;
mod parse;
mod part;
mod range;
mod set;

pub use count::IpCount;
pub(crate) use family::addr_value;
pub use family::IpFamily;
pub use parse::{cidr_to_label_value, parse_cidr, parse_cidr_canonical, parse_ip};
pub use range::{merge_ip_ranges, parse_ip_ranges, IpRange};
pub use set::{IpSet, Runs};
