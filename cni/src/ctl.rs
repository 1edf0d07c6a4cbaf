//! `spiderpoolctl`: kubectl-style management of the objects in a store.
//!
//! Every command returns the text to print, or an [`Error`] whose message the binary prints
//! on stderr before exiting with status 1 (usage errors exit with 2). Output follows kubectl:
//! `spiderippool.spiderpool.spidernet.io/NAME created`, tables with the CRDs' printer
//! columns, `-o json|yaml` with a `List` for several objects.

pub(crate) mod apply;
mod delete;
mod describe;
mod get;
mod workloads;

pub use apply::{apply, workload_scope};
pub use delete::{delete, delete_file};
pub use describe::describe;
pub use get::{get, Output};
pub use workloads::{delete_other, get_other, other_kind, scale};

use spiderpool_core::model::{
    Object, SpiderEndpoint, SpiderIPPool, SpiderReservedIP, SpiderSubnet,
};
use spiderpool_core::store::{Store, Stored};

use crate::Error;

/// The kinds `spiderpoolctl` manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SpiderIPPool (`sp`).
    IpPool,
    /// SpiderSubnet (`ss`).
    Subnet,
    /// SpiderReservedIP (`sr`).
    ReservedIp,
    /// SpiderEndpoint (`se`), namespaced.
    Endpoint,
}

impl Kind {
    /// Parses kubectl's names: short (`sp`), singular and plural, any case.
    pub fn parse(name: &str) -> Result<Kind, Error> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "sp" | "spiderippool" | "spiderippools" | "ippool" | "ippools" => Kind::IpPool,
            "ss" | "spidersubnet" | "spidersubnets" | "subnet" | "subnets" => Kind::Subnet,
            "sr" | "spiderreservedip" | "spiderreservedips" | "reservedip" | "reservedips" => {
                Kind::ReservedIp
            }
            "se" | "spiderendpoint" | "spiderendpoints" | "endpoint" | "endpoints" => {
                Kind::Endpoint
            }
            _ => {
                return Err(Error::Usage(format!(
                    "the server doesn't have a resource type \"{name}\" (use sp, ss, sr or se)"
                )))
            }
        })
    }

    /// The kind name in objects.
    pub fn kind(self) -> &'static str {
        match self {
            Kind::IpPool => SpiderIPPool::KIND,
            Kind::Subnet => SpiderSubnet::KIND,
            Kind::ReservedIp => SpiderReservedIP::KIND,
            Kind::Endpoint => SpiderEndpoint::KIND,
        }
    }

    /// kubectl's resource name: `spiderippool.spiderpool.spidernet.io`.
    pub fn resource(self) -> String {
        format!(
            "{}.spiderpool.spidernet.io",
            self.kind().to_ascii_lowercase()
        )
    }

    /// The kind of an object, if it is one of ours.
    pub fn of(object: &Object) -> Option<Kind> {
        match object {
            Object::IpPool(_) => Some(Kind::IpPool),
            Object::Subnet(_) => Some(Kind::Subnet),
            Object::ReservedIp(_) => Some(Kind::ReservedIp),
            Object::Endpoint(_) => Some(Kind::Endpoint),
            Object::Other(_) => None,
        }
    }
}

/// The largest file (or stdin) `apply -f` and `delete -f` read: 4 MiB, room for a pool of
/// 200 000 single addresses; larger inputs are refused before they are read in full.
pub const MAX_INPUT_BYTES: usize = 4 << 20;

/// Reads the file `path` (`-` for stdin) as UTF-8 text of at most [`MAX_INPUT_BYTES`].
pub fn read_input(path: &str) -> Result<String, Error> {
    use std::io::Read as _;
    let fail = |e: std::io::Error| Error::Input {
        path: path.to_string(),
        reason: e.to_string(),
    };
    let mut bytes = Vec::new();
    let limit = MAX_INPUT_BYTES as u64 + 1;
    if path == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    }
    .map_err(fail)?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(Error::InputTooLarge {
            path: path.to_string(),
            limit: MAX_INPUT_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|e| Error::Input {
        path: path.to_string(),
        reason: format!(
            "not UTF-8 text: invalid byte at offset {}",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// Every object of `kind` in the store.
async fn list<S: Store>(store: &S, kind: Kind) -> Result<Vec<Stored>, Error> {
    Ok(store.list(kind.kind()).await?)
}

/// kubectl's not-found message.
fn not_found(kind: Kind, name: &str) -> Error {
    Error::Usage(format!(
        "Error from server (NotFound): {}s \"{name}\" not found",
        kind.resource().split('.').next().unwrap_or_default()
    ))
}
