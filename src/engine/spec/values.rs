//! What a param value may hold. serde_yaml accepts any YAML value, but a stage's key hashes its
//! params as JSON (`fingerprint::canonical_param`), where some distinct YAML values are one:
//! the keys `1`, `"1"` (and `true`, `"true"`) of one map become the same name, so one entry
//! silently replaces the other; `.nan`, `.inf` and `~` all become `null`; a tagged value
//! `!foo x` becomes the map `{"!foo": x}`. Two different pipelines would then share a key and
//! an edit would not rerun the stage. So a param value is refused, at its place, when it holds
//! a map key that is not a name, a number or a boolean, two keys with one name, a number that
//! is not finite, a tag, or a merge key `<<` (not expanded by serde_yaml: it would be an
//! entry named `<<`).

use serde_yaml::Value;

/// A value refused: the node path below the param (`x/1`, empty for the param itself), whether
/// the key of that node is to blame (else its value), and why.
pub(super) struct Refusal {
    pub node: String,
    pub at_key: bool,
    pub message: String,
}

/// Checks one param's value.
pub(super) fn check(value: &Value) -> Result<(), Refusal> {
    check_at(value, String::new())
}

fn check_at(value: &Value, node: String) -> Result<(), Refusal> {
    let refuse = |at_key: bool, node: String, message: String| {
        Err(Refusal {
            node,
            at_key,
            message,
        })
    };
    match value {
        Value::Number(number) if number.as_f64().is_some_and(|float| !float.is_finite()) => {
            refuse(false, node, format!("`{number}` is not a finite number (a param's value must have one JSON form, and `.nan`, `.inf` and `~` would all be `null`)"))
        }
        Value::Tagged(tagged) => refuse(
            false,
            node,
            format!("YAML tag `{}` is not supported", tagged.tag),
        ),
        Value::Sequence(items) => (items.iter().enumerate())
            .try_for_each(|(index, item)| check_at(item, join(&node, &index.to_string()))),
        Value::Mapping(map) => {
            let mut names: Vec<(String, &Value)> = Vec::with_capacity(map.len());
            for (key, item) in map {
                let name = match key {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    Value::Bool(boolean) => boolean.to_string(),
                    other => {
                        let what = match other {
                            Value::Null => "null",
                            Value::Sequence(_) => "a list",
                            Value::Mapping(_) => "a map",
                            _ => "a tagged value",
                        };
                        return refuse(
                            true,
                            join(&node, "?"),
                            format!("a map key is a name, a number or a boolean, not {what}"),
                        );
                    }
                };
                let child = join(&node, &name);
                if name == "<<" {
                    return refuse(true, child, "YAML merge keys (`<<`) are not supported: write the keys out (anchors and aliases are)".to_string());
                }
                if let Some((_, first)) = names.iter().find(|(seen, _)| *seen == name) {
                    return refuse(
                        true,
                        child,
                        format!(
                            "keys `{}` and `{}` are both the name `{name}`",
                            shown(first),
                            shown(key)
                        ),
                    );
                }
                check_at(item, child)?;
                names.push((name, key));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A key as YAML would show it: `1`, `"1"`, `true`.
fn shown(key: &Value) -> String {
    match key {
        Value::String(text) => format!("{text:?}"),
        other => crate::engine::kind::param_text(other),
    }
}

fn join(node: &str, child: &str) -> String {
    if node.is_empty() {
        child.to_string()
    } else {
        format!("{node}/{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(yaml: &str) -> Option<(String, bool, String)> {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        check(&value)
            .err()
            .map(|refusal| (refusal.node, refusal.at_key, refusal.message))
    }

    #[test]
    fn json_collisions_are_refused_where_they_are() {
        assert!(refusal("{a: [1, {b: 2.5}], 1: x, true: y}").is_none());
        let (node, at_key, message) = refusal("{x: [0, {1: a, '1': b}]}").unwrap();
        assert_eq!((node.as_str(), at_key), ("x/1/1", true));
        assert!(message.contains("keys `1` and `\"1\"`"), "{message}");
        assert_eq!(refusal("[.nan]").unwrap().0, "0");
        assert!(refusal("{a: !foo x}").unwrap().2.contains("`!foo`"));
        assert_eq!(refusal("{<<: {a: 1}}").unwrap().0, "<<");
        assert!(refusal("{[a, b]: 1}").unwrap().2.contains("not a list"));
        assert!(refusal("{~: 1}").unwrap().2.contains("not null"));
    }
}
