//! `kubectl get`-style view of folders of Spiderpool YAML, without a cluster.
//!
//! For each folder (or file) given: reads every `.yaml`/`.yml`/`.json` file in name order,
//! admits the objects one by one with Spiderpool's admission rules (defaulting, then
//! validation against what was admitted before), fills in the status fields the controllers
//! would write, and prints `kubectl get ss/sp/sr/se` tables and each pool's free addresses.
//!
//! ```text
//! cargo run -p spiderpool-core --example get -- examples/seeds/003-reserved-ip
//! ```
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use spiderpool_core::ip::IpFamily;
use spiderpool_core::model::{
    parse_documents, AddressSpec, Object, SpiderEndpoint, SpiderIPPool, SpiderReservedIP,
    SpiderSubnet,
};
use spiderpool_core::table;
use spiderpool_core::validate::{
    mutate_ippool, mutate_reservedip, mutate_subnet, validate_ippool_create,
    validate_reservedip_create, validate_subnet_create, AdmissionConfig, Cluster,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: get <folder or file>...");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for arg in &args {
        if let Err(e) = show(Path::new(arg)) {
            eprintln!("error: {e}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for entry in entries {
        let p = entry
            .map_err(|e| format!("{}: {e}", path.display()))?
            .path();
        if p.is_dir() {
            out.extend(files(&p)?);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

#[derive(Default)]
struct World {
    subnets: Vec<SpiderSubnet>,
    pools: Vec<SpiderIPPool>,
    reserved: Vec<SpiderReservedIP>,
    endpoints: Vec<SpiderEndpoint>,
}

fn show(path: &Path) -> Result<(), String> {
    println!("== {}", path.display());
    let cfg = AdmissionConfig::default();
    let mut world = World::default();
    for file in files(path)? {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let docs =
            parse_documents(&file.display().to_string(), &text).map_err(|e| e.to_string())?;
        for doc in docs {
            for w in &doc.warnings {
                println!("warning: {w}");
            }
            admit(&mut world, doc.object, &cfg);
        }
    }
    for pool in &mut world.pools {
        pool.refresh_status().map_err(|e| e.to_string())?;
    }
    for subnet in &mut world.subnets {
        subnet
            .refresh_status(&world.pools)
            .map_err(|e| e.to_string())?;
    }
    if !world.subnets.is_empty() {
        print!(
            "\n$ kubectl get ss\n{}",
            table::subnet_table(&world.subnets)
        );
    }
    if !world.pools.is_empty() {
        print!(
            "\n$ kubectl get sp -o wide\n{}",
            table::ippool_table(&world.pools, true)
        );
    }
    if !world.reserved.is_empty() {
        print!(
            "\n$ kubectl get sr\n{}",
            table::reservedip_table(&world.reserved)
        );
    }
    if !world.endpoints.is_empty() {
        print!(
            "\n$ kubectl get se\n{}",
            table::endpoint_table(&world.endpoints, true)
        );
    }
    for pool in &world.pools {
        let family = pool.spec.family().map_err(|e| e.to_string())?;
        let reserved = SpiderReservedIP::reserved_set(&world.reserved, family);
        let free = pool.free_ips(&reserved).map_err(|e| e.to_string())?;
        let shown = free.to_range_strings();
        let (head, more) = shown.split_at(shown.len().min(6));
        let more = if more.is_empty() {
            String::new()
        } else {
            format!(" … and {} more ranges", more.len())
        };
        println!(
            "free in {} ({} of {}): {}{more}",
            pool.metadata.name,
            free.len(),
            pool.spec.total_ips().map_err(|e| e.to_string())?.len(),
            if head.is_empty() {
                "none".to_string()
            } else {
                head.join(", ")
            },
        );
        if family == IpFamily::V4 && !reserved.is_empty() {
            let held = pool
                .spec
                .total_ips()
                .map_err(|e| e.to_string())?
                .intersection(&reserved);
            if !held.is_empty() {
                println!(
                    "  reserved, never handed out: {}",
                    held.to_range_strings().join(", ")
                );
            }
        }
    }
    println!();
    Ok(())
}

fn admit(world: &mut World, object: Object, cfg: &AdmissionConfig) {
    let result = match object {
        Object::Subnet(mut s) => {
            mutate_subnet(&mut s);
            let cluster = Cluster {
                pools: &world.pools,
                subnets: &world.subnets,
            };
            validate_subnet_create(&s, &cluster, cfg).map(|_| world.subnets.push(s))
        }
        Object::IpPool(mut p) => {
            mutate_ippool(&mut p, &world.subnets, cfg);
            let cluster = Cluster {
                pools: &world.pools,
                subnets: &world.subnets,
            };
            validate_ippool_create(&p, &cluster, cfg).map(|_| world.pools.push(p))
        }
        Object::ReservedIp(mut r) => {
            mutate_reservedip(&mut r);
            validate_reservedip_create(&r, cfg).map(|_| world.reserved.push(r))
        }
        Object::Endpoint(e) => {
            world.endpoints.push(e);
            Ok(())
        }
        Object::Other(o) => {
            println!(
                "skipped {} {} {:?}: not an IPAM object",
                o.api_version, o.kind, o.name
            );
            Ok(())
        }
    };
    if let Err(e) = result {
        println!("rejected: {e}");
    }
}
