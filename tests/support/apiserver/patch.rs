//! The four PATCH flavours of the real server, on plain JSON.
//!
//! - `application/merge-patch+json`: RFC 7386, exactly.
//! - `application/strategic-merge-patch+json`: the merge patch plus the list merge keys of the
//!   built-in types that Helm's three-way patches rely on (containers, env and volumes by `name`,
//!   container ports by `containerPort`, Service ports by `port`, volumeMounts by `mountPath`,
//!   conditions by `type`, ownerReferences by `uid`, finalizers as a set) and the directives
//!   `$patch: replace|delete`, `$retainKeys`, `$setElementOrder/<list>` and
//!   `$deleteFromPrimitiveList/<list>`. The real server takes the merge keys from the Go struct
//!   tags of each type; here they are chosen by field name (and for `ports` by whether the list
//!   sits under a container), which agrees for every type in `resources.rs`. Any other list is
//!   replaced whole, as a list without a patch strategy is.
//! - `application/json-patch+json`: RFC 6902 (add, remove, replace, move, copy, test).
//! - `application/apply-patch+yaml` (server-side apply): see [`apply`].

use serde_json::{Map, Value};

/// RFC 7386: objects merge key by key, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (k, v) in fields {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// How the elements of a list field are merged.
enum ListStrategy {
    /// Elements are matched by this field and merged; unmatched ones are appended.
    Key(&'static str),
    /// A list of scalars merged as a set (`metadata.finalizers`).
    Set,
    /// No strategy: the patch's list replaces the stored one.
    Replace,
}

fn list_strategy(field: &str, path: &[String]) -> ListStrategy {
    let under_container = path.iter().any(|p| {
        matches!(
            p.as_str(),
            "containers" | "initContainers" | "ephemeralContainers"
        )
    });
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => ListStrategy::Key("name"),
        "volumeMounts" => ListStrategy::Key("mountPath"),
        "volumeDevices" => ListStrategy::Key("devicePath"),
        "ports" if under_container => ListStrategy::Key("containerPort"),
        "ports" => ListStrategy::Key("port"),
        "hostAliases" => ListStrategy::Key("ip"),
        "conditions" => ListStrategy::Key("type"),
        "ownerReferences" => ListStrategy::Key("uid"),
        "topologySpreadConstraints" => ListStrategy::Key("topologyKey"),
        "finalizers" if path.last().is_some_and(|p| p == "metadata") => ListStrategy::Set,
        _ => ListStrategy::Replace,
    }
}

/// A strategic merge patch (see the module doc for what is and is not copied).
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    let mut path = Vec::new();
    smp_value(target, patch, &mut path);
}

fn is_directive(key: &str) -> bool {
    key.starts_with('$')
}

fn smp_value(target: &mut Value, patch: &Value, path: &mut Vec<String>) {
    match patch {
        Value::Object(fields) => smp_map(target, fields, path),
        other => *target = strip_directives(other),
    }
}

/// A copy of a patch fragment without `$…` directive keys, for parts that are inserted whole.
fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !is_directive(k))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn smp_map(target: &mut Value, patch: &Map<String, Value>, path: &mut Vec<String>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(&Value::Object(patch.clone()));
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object above");
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        map.retain(|k, _| keep.contains(&k.as_str()));
    }
    let mut orders = Vec::new();
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            orders.push((field.to_string(), v));
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(gone)) = (map.get_mut(field), v) {
                items.retain(|i| !gone.contains(i));
            }
            continue;
        }
        if is_directive(k) {
            continue;
        }
        if v.is_null() || v.get("$patch").and_then(Value::as_str) == Some("delete") {
            map.remove(k);
            continue;
        }
        let slot = map.entry(k.clone()).or_insert(Value::Null);
        path.push(k.clone());
        match v {
            Value::Array(items) => {
                smp_list(slot, items, k, path);
            }
            _ => smp_value(slot, v, path),
        }
        path.pop();
    }
    for (field, order) in orders {
        if let (Some(Value::Array(items)), Value::Array(order)) = (map.get_mut(&field), order) {
            let parent: Vec<String> = path.clone();
            apply_order(items, order, list_strategy(&field, &parent));
        }
    }
}

fn smp_list(slot: &mut Value, patch: &[Value], field: &str, path: &[String]) {
    // `path` ends with `field`; the strategy is decided by what encloses it.
    let enclosing = &path[..path.len() - 1];
    let replace_all = patch
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"));
    let strategy = list_strategy(field, enclosing);
    if replace_all || !slot.is_array() {
        let kept = patch
            .iter()
            .filter(|e| e.get("$patch").is_none())
            .map(strip_directives)
            .collect();
        *slot = Value::Array(kept);
        return;
    }
    let items = slot.as_array_mut().expect("checked above");
    match strategy {
        ListStrategy::Replace => *items = patch.iter().map(strip_directives).collect(),
        ListStrategy::Set => {
            for p in patch {
                if !items.contains(p) {
                    items.push(p.clone());
                }
            }
        }
        ListStrategy::Key(key) => {
            let mut path = path.to_vec();
            for p in patch {
                let id = &p[key];
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    items.retain(|i| &i[key] != id);
                } else if let Some(existing) = items.iter_mut().find(|i| &i[key] == id) {
                    smp_value(existing, p, &mut path);
                } else {
                    items.push(strip_directives(p));
                }
            }
        }
    }
}

/// `$setElementOrder/<list>`: put the listed elements first, in that order.
fn apply_order(items: &mut [Value], order: &[Value], strategy: ListStrategy) {
    let rank = |item: &Value| -> usize {
        let id = match strategy {
            ListStrategy::Key(key) => order.iter().position(|o| o[key] == item[key]),
            _ => order.iter().position(|o| o == item),
        };
        id.unwrap_or(order.len())
    };
    items.sort_by_key(|i| rank(i));
}

/// RFC 6902. An error (a path that does not exist, a failed `test`) leaves `target` unchanged.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    let mut doc = target.clone();
    for op in ops {
        let name = op["op"].as_str().ok_or("operation without \"op\"")?;
        let path = op["path"].as_str().ok_or("operation without \"path\"")?;
        match name {
            "add" => pointer_add(&mut doc, path, op["value"].clone())?,
            "remove" => {
                pointer_remove(&mut doc, path)?;
            }
            "replace" => {
                let slot = doc
                    .pointer_mut(path)
                    .ok_or_else(|| format!("replace: {path} does not exist"))?;
                *slot = op["value"].clone();
            }
            "move" => {
                let from = op["from"].as_str().ok_or("move without \"from\"")?;
                let value = pointer_remove(&mut doc, from)?;
                pointer_add(&mut doc, path, value)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or("copy without \"from\"")?;
                let value = doc
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| format!("copy: {from} does not exist"))?;
                pointer_add(&mut doc, path, value)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test failed at {path}"));
                }
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    *target = doc;
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok((
        parent.to_string(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn pointer_add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            m.insert(last, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| format!("add: bad index in {path}"))?
            };
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!("add: the parent of {path} does not exist")),
    }
}

fn pointer_remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let gone = match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => m.remove(&last),
        Some(Value::Array(items)) => last
            .parse::<usize>()
            .ok()
            .filter(|i| *i < items.len())
            .map(|i| items.remove(i)),
        _ => None,
    };
    gone.ok_or_else(|| format!("remove: {path} does not exist"))
}

/// Server-side apply.
///
/// The real server records which manager owns each field (managedFields). On an apply it
/// refuses, with a 409 naming each field and its owner, to change a value another manager owns,
/// unless `force=true`, which takes those fields over; and it removes the fields the applying
/// manager owned and no longer sends, unless another manager still owns them (that is how
/// ownership is handed from one manager to another: the new one applies the same values, the
/// old one stops sending them). The double keeps the last configuration each manager applied
/// as that manager's fields (a field is owned by every manager whose configuration sets it) and
/// computes the same. Fields written by plain PATCH or PUT (an "Update" manager on the real
/// server, such as Helm 3's three-way patches) are not tracked, so they never conflict here.
///
/// Read from the server-side apply documentation and tried on kube-apiserver v1.20.2: the
/// conformance test in `tests/real_cluster.rs` hands a Service from one manager to another on
/// both servers (apply, a 409 over another manager's value, a forced take-over, the old manager
/// dropping fields that stay, the new one changing them) and compares codes and ports. The real
/// server keys Service ports by `port` and `protocol` (`[port=5432,protocol="TCP"]` in its
/// messages); here by `port` alone, as for the strategic patch above.
pub fn apply(
    live: &Value,
    mine: Option<&Value>,
    others: &mut [(&str, &mut Value)],
    applied: &Value,
    force: bool,
) -> Result<Value, String> {
    let applied = strip_nulls(applied);
    let mut conflicts = Vec::new();
    for field in leaves(&applied) {
        if get(live, &field) == get(&applied, &field) {
            continue;
        }
        for (owner, config) in others.iter() {
            if get(config, &field).is_some() {
                conflicts.push((owner.to_string(), field.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let n = conflicts.len();
        let mut message = format!(
            "Apply failed with {n} conflict{}: ",
            if n == 1 { "" } else { "s" }
        );
        let lines: Vec<String> = conflicts
            .iter()
            .map(|(owner, field)| format!("conflict with \"{owner}\": {}", render(field)))
            .collect();
        message.push_str(&lines.join("\n"));
        return Err(message);
    }
    for (owner, field) in &conflicts {
        if let Some((_, config)) = others.iter_mut().find(|(o, _)| o == owner) {
            remove(config, field);
        }
    }
    let mut out = live.clone();
    if let Some(previous) = mine {
        let others: Vec<&Value> = others.iter().map(|(_, c)| &**c).collect();
        prune(&mut out, previous, &applied, &mut Vec::new(), &others);
    }
    strategic_merge_patch(&mut out, &applied);
    Ok(out)
}

/// One step of the path to a field: an object key, or the element of a keyed list whose merge
/// key has this value.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Item(&'static str, Value),
}

fn names(path: &[Seg]) -> Vec<String> {
    path.iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.clone()),
            Seg::Item(..) => None,
        })
        .collect()
}

/// The fields a configuration sets: scalars and unkeyed lists (which are owned whole), by path.
/// The object's identity (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace`) is not
/// a field anyone owns.
fn leaves(config: &Value) -> Vec<Vec<Seg>> {
    fn walk(v: &Value, path: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let identity = match path.as_slice() {
                        [] => k == "apiVersion" || k == "kind",
                        [Seg::Key(meta)] => meta == "metadata" && (k == "name" || k == "namespace"),
                        _ => false,
                    };
                    if identity {
                        continue;
                    }
                    path.push(Seg::Key(k.clone()));
                    walk(child, path, out);
                    path.pop();
                }
            }
            Value::Array(items) => {
                let field = names(path);
                let (last, parents) = field.split_last().expect("a list is under a key");
                match list_strategy(last, parents) {
                    ListStrategy::Key(key) => {
                        for item in items {
                            path.push(Seg::Item(key, item[key].clone()));
                            walk(item, path, out);
                            path.pop();
                        }
                    }
                    _ => out.push(path.clone()),
                }
            }
            _ => out.push(path.clone()),
        }
    }
    let mut out = Vec::new();
    walk(config, &mut Vec::new(), &mut out);
    out
}

fn get<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get(k),
        Seg::Item(key, value) => v.as_array()?.iter().find(|i| &i[*key] == value),
    })
}

fn remove(v: &mut Value, path: &[Seg]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let parent = parent.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get_mut(k),
        Seg::Item(key, value) => v.as_array_mut()?.iter_mut().find(|i| &i[*key] == value),
    });
    match (parent, last) {
        (Some(Value::Object(m)), Seg::Key(k)) => {
            m.remove(k);
        }
        (Some(Value::Array(items)), Seg::Item(key, value)) => items.retain(|i| &i[*key] != value),
        _ => {}
    }
}

/// A field path as the real server prints it in a conflict: `.spec.ports[port=5432].targetPort`.
fn render(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => format!(".{k}"),
            Seg::Item(key, value) => format!("[{key}={value}]"),
        })
        .collect()
}

fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Remove from `live` what `old` set and `new` no longer sets, except what another manager's
/// configuration (`others`) still sets.
fn prune(live: &mut Value, old: &Value, new: &Value, path: &mut Vec<Seg>, others: &[&Value]) {
    let (Some(live_map), Some(old_map)) = (live.as_object_mut(), old.as_object()) else {
        return;
    };
    let nothing = Value::Object(Map::new());
    for (k, old_v) in old_map {
        path.push(Seg::Key(k.clone()));
        let owned_elsewhere = others.iter().any(|o| get(o, path).is_some());
        match new.get(k) {
            None if !owned_elsewhere => {
                live_map.remove(k);
            }
            None => {
                // Only the parts nobody else sets go.
                if let Some(live_v) = live_map.get_mut(k) {
                    prune_list_or_map(live_v, old_v, &nothing, path, others);
                }
            }
            Some(new_v) => {
                if let Some(live_v) = live_map.get_mut(k) {
                    prune_list_or_map(live_v, old_v, new_v, path, others);
                }
            }
        }
        path.pop();
    }
}

fn prune_list_or_map(
    live: &mut Value,
    old: &Value,
    new: &Value,
    path: &mut Vec<Seg>,
    others: &[&Value],
) {
    match old {
        Value::Object(_) => prune(live, old, new, path, others),
        Value::Array(old_items) => {
            let field = names(path);
            let (last, parents) = field.split_last().expect("a list is under a key");
            let ListStrategy::Key(key) = list_strategy(last, parents) else {
                return;
            };
            let Some(live_items) = live.as_array_mut() else {
                return;
            };
            let new_items = new.as_array().map(Vec::as_slice).unwrap_or_default();
            let nothing = Value::Object(Map::new());
            for o in old_items {
                path.push(Seg::Item(key, o[key].clone()));
                let owned_elsewhere = others.iter().any(|c| get(c, path).is_some());
                let n = new_items.iter().find(|n| n[key] == o[key]);
                match n {
                    None if !owned_elsewhere => live_items.retain(|l| l[key] != o[key]),
                    _ => {
                        if let Some(l) = live_items.iter_mut().find(|l| l[key] == o[key]) {
                            prune(l, o, n.unwrap_or(&nothing), path, others);
                        }
                    }
                }
                path.pop();
            }
        }
        _ => {}
    }
}
