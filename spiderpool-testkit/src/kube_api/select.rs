//! Label and field selectors, as the API server applies them to lists and watches.

use serde_json::Value;

/// One requirement of a selector.
#[derive(Debug, PartialEq)]
enum Term {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector` or `fieldSelector`: every term must hold.
#[derive(Debug, Default)]
pub(crate) struct Selector {
    labels: Vec<Term>,
    fields: Vec<Term>,
}

impl Selector {
    /// Parses the selectors of a query (either may be absent).
    pub(crate) fn parse(labels: Option<&str>, fields: Option<&str>) -> Selector {
        Selector {
            labels: labels.map(terms).unwrap_or_default(),
            fields: fields.map(terms).unwrap_or_default(),
        }
    }

    /// Whether `object` is selected.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let field = |k: &str| {
            let pointer = format!("/{}", k.replace('.', "/"));
            Some(match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            })
        };
        self.labels
            .iter()
            .all(|t| holds(t, |k| label(k).map(str::to_string)))
            && self.fields.iter().all(|t| holds(t, field))
    }
}

/// Whether `term` holds, given the value of each key (absent labels are `None`; an absent
/// field is the empty string, as on the API server).
fn holds(term: &Term, value: impl Fn(&str) -> Option<String>) -> bool {
    match term {
        Term::Eq(k, v) => value(k).as_deref() == Some(v.as_str()),
        Term::NotEq(k, v) => value(k).as_deref() != Some(v.as_str()),
        Term::In(k, vs) => value(k).is_some_and(|x| vs.contains(&x)),
        Term::NotIn(k, vs) => value(k).is_none_or(|x| !vs.contains(&x)),
        Term::Exists(k) => value(k).is_some(),
        Term::NotExists(k) => value(k).is_none(),
    }
}

/// Splits at commas outside parentheses and parses each term.
fn terms(s: &str) -> Vec<Term> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.extend(term(&s[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.extend(term(&s[start..]));
    out
}

fn term(t: &str) -> Option<Term> {
    let t = t.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(k) = t.strip_prefix('!') {
        return Some(Term::NotExists(k.trim().to_string()));
    }
    if let Some((k, v)) = t.split_once("!=") {
        return Some(Term::NotEq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
        return Some(Term::Eq(k.trim().into(), v.trim().into()));
    }
    let set = |rest: &str| -> Vec<String> {
        rest.trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .map(|v| v.trim().to_string())
            .collect()
    };
    if let Some((k, rest)) = t.split_once(" notin ") {
        return Some(Term::NotIn(k.trim().into(), set(rest)));
    }
    if let Some((k, rest)) = t.split_once(" in ") {
        return Some(Term::In(k.trim().into(), set(rest)));
    }
    Some(Term::Exists(t.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_and_field_selectors() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web", "tier": "a"}},
                         "spec": {"nodeName": "n1"}});
        let sel = |l: &str, f: &str| {
            Selector::parse(
                Some(l).filter(|s| !s.is_empty()),
                Some(f).filter(|s| !s.is_empty()),
            )
            .matches(&pod)
        };
        assert!(sel("app=web,tier", ""));
        assert!(sel("app==web,!gone,tier!=b", ""));
        assert!(!sel("app=db", ""));
        assert!(!sel("!app", ""));
        assert!(!sel("gone", ""));
        assert!(sel("tier in (a, b),app notin (db)", ""));
        assert!(!sel("tier in (b,c)", ""));
        assert!(sel("", "metadata.name=p,spec.nodeName=n1"));
        assert!(!sel("", "spec.nodeName=n2"));
        assert!(sel("app=web", "metadata.name!=q"));
        assert!(sel("", "spec.schedulerName="));
    }
}
