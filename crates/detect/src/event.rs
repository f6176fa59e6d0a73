//! An [`EventBody`]'s `raw` fields as an RSigma [`Event`], without copying.
//!
//! RSigma's own `JsonEvent` needs a `serde_json::Value`; our events hold a
//! `Map`, and cloning it per event would cost more than matching does. This
//! view reads the map in place, adds the routing aliases (a Sigma field name
//! read from another raw field, see [`crate::routing`]), and resolves dotted
//! paths (`userIdentity.arn`) into nested objects the way `JsonEvent` does: a
//! flat key wins, arrays are searched member by member, `name[N]` picks one
//! element.

use crate::routing::Aliases;
use rsigma_eval::event::{Event, EventValue};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Deeper JSON is not searched (as in RSigma): it bounds recursion on hostile
/// input.
const MAX_DEPTH: usize = 64;

/// The field correlation rules are additionally grouped by, holding the
/// caller's partition (see [`crate::Detector::evaluate_in`]). No event field
/// can shadow it: it is answered before the event's own fields.
pub(crate) const PARTITION_FIELD: &str = "\u{1}mimamori_partition";

pub(crate) struct RawEvent<'a> {
    raw: &'a Map<String, Value>,
    aliases: Aliases,
    partition: &'a str,
}

impl<'a> RawEvent<'a> {
    pub(crate) fn new(raw: &'a Map<String, Value>, aliases: Aliases) -> Self {
        RawEvent {
            raw,
            aliases,
            partition: "",
        }
    }

    /// The same view, answering [`PARTITION_FIELD`] with `partition`.
    pub(crate) fn with_partition(mut self, partition: &'a str) -> Self {
        self.partition = partition;
        self
    }

    fn alias(&self, path: &str) -> Option<&'a Value> {
        let raw: &'a Map<String, Value> = self.raw;
        self.aliases
            .iter()
            .find(|(sigma, _)| *sigma == path)
            .and_then(|(_, target)| raw.get(*target))
    }
}

enum Step<'p> {
    Key(&'p str),
    Index(i64),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        match part.find('[') {
            Some(b) if b > 0 || part.starts_with('[') => {
                let (name, mut rest) = part.split_at(b);
                let mut idx = Vec::new();
                let mut ok = true;
                while let Some(r) = rest.strip_prefix('[') {
                    match r
                        .find(']')
                        .and_then(|c| Some((r[..c].parse::<i64>().ok()?, c)))
                    {
                        Some((i, c)) => {
                            idx.push(i);
                            rest = &r[c + 1..];
                        }
                        None => {
                            ok = false;
                            break;
                        }
                    }
                }
                if ok && rest.is_empty() {
                    if !name.is_empty() {
                        out.push(Step::Key(name));
                    }
                    out.extend(idx.into_iter().map(Step::Index));
                } else {
                    out.push(Step::Key(part));
                }
            }
            _ => out.push(Step::Key(part)),
        }
    }
    out
}

fn collect<'a>(v: &'a Value, steps: &[Step<'_>], out: &mut Vec<EventValue<'a>>, depth: usize) {
    if depth == 0 {
        return;
    }
    let Some((step, rest)) = steps.split_first() else {
        out.push(EventValue::from(v));
        return;
    };
    match (step, v) {
        (Step::Key(k), Value::Object(m)) => {
            if let Some(next) = m.get(*k) {
                collect(next, rest, out, depth - 1);
            }
        }
        (Step::Key(_), Value::Array(items)) => {
            for it in items {
                collect(it, steps, out, depth - 1);
            }
        }
        (Step::Index(i), Value::Array(items)) => {
            let len = items.len() as i64;
            let at = if *i < 0 { len + i } else { *i };
            if (0..len).contains(&at) {
                collect(&items[at as usize], rest, out, depth - 1);
            }
        }
        _ => {}
    }
}

fn visit_strings(v: &Value, visit: &mut dyn FnMut(&str), depth: usize) {
    if depth == 0 {
        return;
    }
    match v {
        Value::String(s) => visit(s),
        Value::Array(a) => a.iter().for_each(|x| visit_strings(x, visit, depth - 1)),
        Value::Object(m) => m.values().for_each(|x| visit_strings(x, visit, depth - 1)),
        _ => {}
    }
}

fn any_string(v: &Value, pred: &dyn Fn(&str) -> bool, depth: usize) -> bool {
    if depth == 0 {
        return false;
    }
    match v {
        Value::String(s) => pred(s),
        Value::Array(a) => a.iter().any(|x| any_string(x, pred, depth - 1)),
        Value::Object(m) => m.values().any(|x| any_string(x, pred, depth - 1)),
        _ => false,
    }
}

impl Event for RawEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        if path == PARTITION_FIELD {
            return Some(EventValue::Str(Cow::Borrowed(self.partition)));
        }
        if let Some(v) = self.raw.get(path) {
            return Some(EventValue::from(v));
        }
        if let Some(v) = self.alias(path) {
            return Some(EventValue::from(v));
        }
        if !(path.contains('.') || path.contains('[')) {
            return None;
        }
        let steps = steps(path);
        let Some((Step::Key(root), rest)) = steps.split_first() else {
            return None;
        };
        let first = self.raw.get(*root)?;
        let mut out = Vec::new();
        collect(first, rest, &mut out, MAX_DEPTH);
        match out.len() {
            0 => None,
            1 => out.pop(),
            _ => Some(EventValue::Array(out)),
        }
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.raw.values().any(|v| any_string(v, pred, MAX_DEPTH))
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        self.visit_string_values(&mut |s| out.push(s.to_string()));
        out.into_iter().map(Cow::Owned).collect()
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for v in self.raw.values() {
            visit_strings(v, visit, MAX_DEPTH);
        }
    }

    fn to_json(&self) -> Value {
        Value::Object(self.raw.clone())
    }

    fn top_level_keys(&self) -> Option<Vec<Cow<'_, str>>> {
        let mut keys = Vec::with_capacity(self.raw.len() + self.aliases.len());
        self.visit_top_level_keys(&mut |k| keys.push(Cow::Owned(k.to_string())));
        Some(keys)
    }

    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        for k in self.raw.keys() {
            visit(k);
        }
        for (sigma, target) in self.aliases {
            if !self.raw.contains_key(*sigma) && self.raw.contains_key(*target) {
                visit(sigma);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn flat_nested_alias_and_arrays() {
        let raw = map(json!({
            "id.orig_h": "10.0.0.1",
            "userIdentity": {"type": "Root", "arn": "arn:x"},
            "resources": [{"ARN": "a1"}, {"ARN": "a2"}],
            "NewProcessName": "C:\\x.exe"
        }));
        let ev = RawEvent::new(&raw, &[("Image", "NewProcessName")]);
        assert_eq!(
            ev.get_field("id.orig_h")
                .and_then(|v| v.as_str().map(|s| s.into_owned())),
            Some("10.0.0.1".into())
        );
        assert_eq!(
            ev.get_field("userIdentity.type")
                .and_then(|v| v.as_str().map(|s| s.into_owned())),
            Some("Root".into())
        );
        assert_eq!(
            ev.get_field("Image")
                .and_then(|v| v.as_str().map(|s| s.into_owned())),
            Some("C:\\x.exe".into())
        );
        match ev.get_field("resources.ARN") {
            Some(EventValue::Array(a)) => assert_eq!(a.len(), 2),
            other => panic!("expected two values, got {other:?}"),
        }
        assert_eq!(
            ev.get_field("resources[1].ARN")
                .and_then(|v| v.as_str().map(|s| s.into_owned())),
            Some("a2".into())
        );
        assert_eq!(
            ev.get_field("resources[-1].ARN")
                .and_then(|v| v.as_str().map(|s| s.into_owned())),
            Some("a2".into())
        );
        assert!(ev.get_field("resources[5].ARN").is_none());
        assert!(ev.get_field("missing.x").is_none());
        let mut keys = Vec::new();
        ev.visit_top_level_keys(&mut |k| keys.push(k.to_string()));
        assert!(keys.contains(&"Image".to_string()));
        assert!(ev.any_string_value(&|s| s == "a1"));
    }
}
