//! Links the `spiderpool` plugin as a position-dependent executable on x86-64 Linux. The
//! container runtime starts one plugin process per CNI call, so start-up is most of an ADD's
//! cost: a PIE of this size makes the loader apply ~28,000 relocations and touch their pages
//! at every start; a non-PIE has them resolved at link time. Nothing else changes (same
//! dynamic glibc, same code); other targets keep their defaults.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os == "linux" && arch == "x86_64" {
        println!("cargo:rustc-link-arg-bin=spiderpool=-no-pie");
    }
}
