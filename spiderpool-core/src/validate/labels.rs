//! Kubernetes label keys, label values and label selectors, as the API server checks them.

use super::{FieldError, FieldErrorKind};
use crate::model::LabelSelector;

const NAME_HELP: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must \
                         start and end with an alphanumeric character";

/// Checks a qualified name (`[prefix/]name`), e.g. a label key.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if name.contains('/') {
        return Err("a qualified name must have at most one '/'".into());
    }
    if let Some(p) = prefix {
        check_dns_subdomain(p).map_err(|e| format!("prefix part {e}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    if !is_label_token(name) {
        return Err(format!("name part {NAME_HELP}"));
    }
    Ok(())
}

/// Checks a label value: empty, or at most 63 characters of the label alphabet.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    if !value.is_empty() && !is_label_token(value) {
        return Err(format!("a valid label {NAME_HELP}"));
    }
    Ok(())
}

/// Checks an RFC 1123 DNS subdomain (object names of cluster-scoped kinds, label prefixes).
pub fn check_dns_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must be non-empty".into());
    }
    if name.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    let ok = name.split('.').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !part.starts_with('-')
            && !part.ends_with('-')
    });
    if !ok {
        return Err(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

fn is_label_token(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge = |b: u8| b.is_ascii_alphanumeric();
    bytes.first().copied().is_some_and(edge)
        && bytes.last().copied().is_some_and(edge)
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Checks a selector as Kubernetes' `ValidateLabelSelector` does: keys and values of
/// `matchLabels`, and for `matchExpressions` the key, a known operator, and values present
/// exactly for `In`/`NotIn`.
pub fn check_selector(selector: &LabelSelector, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in &selector.match_labels {
        if let Err(e) = check_label_key(k) {
            errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                format!("{path}.matchLabels"),
                k,
                e,
            ));
        }
        if let Err(e) = check_label_value(v) {
            errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                format!("{path}.matchLabels"),
                v,
                e,
            ));
        }
    }
    for (i, req) in selector.match_expressions.iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        if let Err(e) = check_label_key(&req.key) {
            errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                format!("{p}.key"),
                &req.key,
                e,
            ));
        }
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if req.values.is_empty() {
                    errs.push(FieldError::new(
                        FieldErrorKind::Required,
                        format!("{p}.values"),
                        "",
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !req.values.is_empty() {
                    errs.push(FieldError::new(
                        FieldErrorKind::Forbidden,
                        format!("{p}.values"),
                        "",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                format!("{p}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        for v in &req.values {
            if let Err(e) = check_label_value(v) {
                errs.push(FieldError::new(
                    FieldErrorKind::Invalid,
                    format!("{p}.values"),
                    v,
                    e,
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_and_values() {
        assert!(check_label_key("app").is_ok());
        assert!(check_label_key("ipam.spidernet.io/app-name").is_ok());
        assert!(check_label_key("Bad.Prefix/x").is_err());
        assert!(check_label_key("a/b/c").is_err());
        assert!(check_label_key("-x").is_err());
        assert!(check_label_key(&"x".repeat(64)).is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("v1.2_3-a").is_ok());
        assert!(check_label_value("has space").is_err());
        assert!(check_dns_subdomain("auto4-nginx-eth0-452e7").is_ok());
        assert!(check_dns_subdomain("Upper").is_err());
    }

    #[test]
    fn selectors() {
        let sel: LabelSelector = serde_json::from_str(
            r#"{"matchLabels":{"bad key":"v"},"matchExpressions":[
                {"key":"a","operator":"In"},
                {"key":"b","operator":"Exists","values":["x"]},
                {"key":"c","operator":"Near","values":["x"]}]}"#,
        )
        .unwrap();
        let errs = check_selector(&sel, "spec.podAffinity");
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "spec.podAffinity.matchLabels",
                "spec.podAffinity.matchExpressions[0].values",
                "spec.podAffinity.matchExpressions[1].values",
                "spec.podAffinity.matchExpressions[2].operator",
            ]
        );
    }
}
