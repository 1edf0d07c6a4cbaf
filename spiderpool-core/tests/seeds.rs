//! Every object in the seed documents (`../shared/spec/seeds/`) and in `examples/` parses.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use spiderpool_core::model::{parse_documents, AddressSpec, Document, Object};

fn repo_root() -> PathBuf {
    spiderpool_testkit::fixtures::package_dir()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Pulls the Kubernetes objects out of a markdown (or rendered) seed document: every block that
/// starts with an `apiVersion:` line, up to the first line indented less, a heredoc `EOF` or a
/// code fence. Returns the blocks, dedented.
fn extract_objects(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        if !line.trim_start().starts_with("apiVersion:") {
            i += 1;
            continue;
        }
        let mut block = vec![&line[indent..]];
        i += 1;
        while i < lines.len() {
            let l = lines[i];
            let t = l.trim_start();
            let li = l.len() - t.len();
            if t == "EOF" || t.starts_with("```") || (!t.is_empty() && li < indent) {
                break;
            }
            if li == indent && t.starts_with("apiVersion:") {
                break;
            }
            if t.is_empty() && prose_follows(&lines[i + 1..], indent) {
                break;
            }
            block.push(if l.len() >= indent { &l[indent..] } else { "" });
            i += 1;
        }
        out.push(block.join("\n"));
    }
    out
}

/// In a rendered page, prose follows a code block at the block's own indentation: a blank line
/// whose next non-blank line is not a YAML key or list item ends the object.
fn prose_follows(rest: &[&str], indent: usize) -> bool {
    let Some(next) = rest.iter().find(|l| !l.trim().is_empty()) else {
        return true;
    };
    let t = next.trim_start();
    let li = next.len() - t.len();
    let key = t.split_once(':').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
    });
    li <= indent && !key && !t.starts_with("- ")
}

fn parse_seed(file: &str) -> Vec<Document> {
    let path = repo_root().join("../shared/spec/seeds").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("seed {} must be readable: {e}", path.display()));
    let mut docs = Vec::new();
    for (i, block) in extract_objects(&text).iter().enumerate() {
        let parsed = parse_documents(&format!("{file}#{i}"), block)
            .unwrap_or_else(|e| panic!("{file} object {i} does not parse: {e}\n{block}"));
        docs.extend(parsed);
    }
    docs
}

fn spiderpool_objects(docs: &[Document]) -> Vec<(String, String)> {
    docs.iter()
        .filter(|d| !matches!(d.object, Object::Other(_)))
        .map(|d| (d.object.kind().to_string(), d.object.name().to_string()))
        .collect()
}

fn pool<'a>(docs: &'a [Document], name: &str) -> &'a spiderpool_core::model::SpiderIPPool {
    docs.iter()
        .find_map(|d| match &d.object {
            Object::IpPool(p) if p.metadata.name == name => Some(p),
            _ => None,
        })
        .unwrap_or_else(|| panic!("pool {name} not found"))
}

fn seeds_present() -> bool {
    let dir = repo_root().join("../shared/spec/seeds");
    if !dir.is_dir() {
        eprintln!(
            "skipping: {} not found (CI has shared/ beside the clone)",
            dir.display()
        );
        return false;
    }
    true
}

#[test]
fn seed_000_and_001_operator_pool() {
    if !seeds_present() {
        return;
    }
    for file in ["000_7797b0c732b3459e.txt", "001_74f122969a78794f.txt"] {
        let docs = parse_seed(file);
        assert_eq!(
            spiderpool_objects(&docs),
            vec![("SpiderIPPool".into(), "custom-ipv4-ippool".into())],
            "{file}"
        );
        let p = pool(&docs, "custom-ipv4-ippool");
        assert_eq!(p.spec.subnet, "172.18.41.0/24");
        assert_eq!(p.spec.ips, vec!["172.18.41.40-172.18.41.50"]);
        assert_eq!(p.spec.total_ips().unwrap().len().to_u128(), Some(11));
        // Both CloneSets are kept as other objects, with their annotations intact.
        let clonesets: Vec<_> = docs
            .iter()
            .filter_map(|d| match &d.object {
                Object::Other(o) if o.kind == "CloneSet" => Some(o),
                _ => None,
            })
            .collect();
        assert_eq!(clonesets.len(), 2, "{file}");
        let annotations = clonesets[1]
            .value
            .pointer("/spec/template/metadata/annotations")
            .unwrap();
        assert_eq!(annotations["ipam.spidernet.io/ippool-ip-number"], "5");
        assert!(docs.iter().all(|d| d.warnings.is_empty()), "{file}");
    }
}

#[test]
fn seed_002_calico_pool_with_misindented_spec_parses_and_warns() {
    if !seeds_present() {
        return;
    }
    let docs = parse_seed("002_275ff4b590972ec6.txt");
    assert_eq!(
        spiderpool_objects(&docs),
        vec![("SpiderIPPool".into(), "nginx-v4-ippool".into())]
    );
    let d = docs
        .iter()
        .find(|d| d.object.name() == "nginx-v4-ippool")
        .unwrap();
    assert_eq!(
        d.warnings,
        vec![
            "SpiderIPPool \"nginx-v4-ippool\": unknown field \"metadata.spec\" (kept, not used; \
             is it indented under metadata by mistake?)"
        ]
    );
    let p = pool(&docs, "nginx-v4-ippool");
    assert_eq!(p.spec.subnet, "", "the mis-indented spec is not used");
    assert_eq!(
        p.metadata.extra["spec"]["ips"][0], "10.244.120.10-10.244.120.20",
        "but it is kept"
    );
    let deployments = docs
        .iter()
        .filter(|d| d.object.kind() == "Deployment")
        .count();
    assert_eq!(deployments, 2);
}

#[test]
fn seed_003_reserved_ip_and_pool() {
    if !seeds_present() {
        return;
    }
    let docs = parse_seed("003_5478d3bf014bc64c.txt");
    assert_eq!(
        spiderpool_objects(&docs),
        vec![
            ("SpiderReservedIP".into(), "test-reservedip".into()),
            ("SpiderIPPool".into(), "test-ippool".into()),
        ]
    );
    let kinds: Vec<&str> = docs.iter().map(|d| d.object.kind()).collect();
    assert!(kinds.contains(&"SpiderMultusConfig"));
    let Object::ReservedIp(r) = &docs
        .iter()
        .find(|d| d.object.name() == "test-reservedip")
        .unwrap()
        .object
    else {
        panic!("not a reserved IP");
    };
    assert_eq!(r.spec.ips, vec!["10.6.168.131-10.6.168.132"]);
    assert_eq!(pool(&docs, "test-ippool").spec.subnet, "10.6.0.0/16");
}

#[test]
fn seed_004_legacy_v1_pool_is_converted() {
    if !seeds_present() {
        return;
    }
    let docs = parse_seed("004_205e4b45965a08f9.txt");
    assert_eq!(
        spiderpool_objects(&docs),
        vec![("SpiderIPPool".into(), "custom-ipv4-ippool".into())]
    );
    let d = &docs[0];
    assert_eq!(
        d.warnings,
        vec!["SpiderIPPool \"custom-ipv4-ippool\": converted from spiderpool.spidernet.io/v1"]
    );
    let p = pool(&docs, "custom-ipv4-ippool");
    assert_eq!(p.api_version, "spiderpool.spidernet.io/v2beta1");
    assert_eq!(p.spec.ip_version, Some(4));
}

#[test]
fn every_example_file_parses_without_warnings_except_legacy() {
    let dir = repo_root().join("examples");
    let mut count = 0;
    for folder in std::fs::read_dir(&dir).unwrap() {
        let folder = folder.unwrap().path();
        let mut stack = vec![folder];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if p.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let docs = parse_documents(&p.display().to_string(), &text).unwrap();
            for d in &docs {
                let legacy = p.to_string_lossy().contains("legacy");
                assert_eq!(
                    d.warnings.is_empty(),
                    !legacy,
                    "{}: {:?}",
                    p.display(),
                    d.warnings
                );
            }
            count += docs.len();
        }
    }
    assert!(count >= 8, "examples hold the seed objects, found {count}");
}
