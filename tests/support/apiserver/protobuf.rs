//! Reading the Kubernetes protobuf encoding of request bodies, for the types that clients
//! write with it.
//!
//! client-go's generated clientsets (≥ 1.32) send bodies as `application/vnd.kubernetes.protobuf`
//! and accept JSON or protobuf back; there is no JSON fallback on 415. Helm writes its release
//! records (Secrets, or ConfigMaps with `HELM_DRIVER=configmap`) that way, so the double decodes
//! those two kinds: the `k8s\0` envelope (`runtime.Unknown{typeMeta, raw}`), then `v1.Secret` /
//! `v1.ConfigMap` with their `ObjectMeta` (field numbers from k8s.io/api `generated.proto`).
//! Answers stay JSON. Any other kind sent as protobuf gets 415, naming the kind.

use serde_json::{Map, Value, json};

use super::store::{base64, rfc3339};

/// One field's value, by wire type.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one message, in order (repeated fields appear several times).
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    fn varint(buf: &mut &[u8]) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
            *buf = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let tag = varint(&mut buf)?;
        let wire = match tag & 7 {
            0 => Wire::Varint(varint(&mut buf)?),
            2 => {
                let n = usize::try_from(varint(&mut buf)?).map_err(|e| e.to_string())?;
                if n > buf.len() {
                    return Err("truncated field".into());
                }
                let (data, rest) = buf.split_at(n);
                buf = rest;
                Wire::Bytes(data)
            }
            1 | 5 => {
                let n = if tag & 7 == 1 { 8 } else { 4 };
                if n > buf.len() {
                    return Err("truncated field".into());
                }
                buf = &buf[n..];
                Wire::Fixed
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((tag >> 3, wire));
    }
    Ok(out)
}

fn text(data: &[u8]) -> Value {
    json!(String::from_utf8_lossy(data))
}

/// A `map<string, V>` entry: (key, raw value bytes).
fn map_entry(data: &[u8]) -> Result<(String, &[u8]), String> {
    let mut key = String::new();
    let mut value: &[u8] = &[];
    for (f, w) in fields(data)? {
        match (f, w) {
            (1, Wire::Bytes(k)) => key = String::from_utf8_lossy(k).into_owned(),
            (2, Wire::Bytes(v)) => value = v,
            _ => {}
        }
    }
    Ok((key, value))
}

/// `metav1.Time{seconds = 1, nanos = 2}`.
fn time(data: &[u8]) -> Result<Value, String> {
    let mut seconds = 0;
    for (f, w) in fields(data)? {
        if let (1, Wire::Varint(s)) = (f, w) {
            seconds = s as i64;
        }
    }
    Ok(json!(rfc3339(seconds)))
}

fn owner_reference(data: &[u8]) -> Result<Value, String> {
    let mut o = Map::new();
    for (f, w) in fields(data)? {
        match (f, w) {
            (1, Wire::Bytes(v)) => o.insert("kind".into(), text(v)),
            (3, Wire::Bytes(v)) => o.insert("name".into(), text(v)),
            (4, Wire::Bytes(v)) => o.insert("uid".into(), text(v)),
            (5, Wire::Bytes(v)) => o.insert("apiVersion".into(), text(v)),
            (6, Wire::Varint(v)) => o.insert("controller".into(), json!(v != 0)),
            (7, Wire::Varint(v)) => o.insert("blockOwnerDeletion".into(), json!(v != 0)),
            _ => None,
        };
    }
    Ok(Value::Object(o))
}

fn object_meta(data: &[u8]) -> Result<Value, String> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut owners = Vec::new();
    let mut finalizers = Vec::new();
    for (f, w) in fields(data)? {
        let field = match (f, w) {
            (1, Wire::Bytes(v)) => Some(("name", text(v))),
            (2, Wire::Bytes(v)) => Some(("generateName", text(v))),
            (3, Wire::Bytes(v)) => Some(("namespace", text(v))),
            (5, Wire::Bytes(v)) => Some(("uid", text(v))),
            (6, Wire::Bytes(v)) => Some(("resourceVersion", text(v))),
            (7, Wire::Varint(v)) => Some(("generation", json!(v as i64))),
            (8, Wire::Bytes(v)) => Some(("creationTimestamp", time(v)?)),
            (9, Wire::Bytes(v)) => Some(("deletionTimestamp", time(v)?)),
            (10, Wire::Varint(v)) => Some(("deletionGracePeriodSeconds", json!(v as i64))),
            (11, Wire::Bytes(v)) => {
                let (k, v) = map_entry(v)?;
                labels.insert(k, text(v));
                None
            }
            (12, Wire::Bytes(v)) => {
                let (k, v) = map_entry(v)?;
                annotations.insert(k, text(v));
                None
            }
            (13, Wire::Bytes(v)) => {
                owners.push(owner_reference(v)?);
                None
            }
            (14, Wire::Bytes(v)) => {
                finalizers.push(text(v));
                None
            }
            _ => None,
        };
        if let Some((k, v)) = field {
            m.insert(k.into(), v);
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !owners.is_empty() {
        m.insert("ownerReferences".into(), Value::Array(owners));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(m))
}

/// `v1.Secret{metadata = 1, data = 2 (bytes), type = 3, stringData = 4, immutable = 5}` and
/// `v1.ConfigMap{metadata = 1, data = 2 (string), binaryData = 3 (bytes), immutable = 4}`.
fn secret_or_configmap(kind: &str, raw: &[u8]) -> Result<Value, String> {
    let secret = kind == "Secret";
    let mut obj = json!({"apiVersion": "v1", "kind": kind, "metadata": {}});
    let mut put = |field: &str, k: String, v: Value| {
        if !obj[field].is_object() {
            obj[field] = json!({});
        }
        obj[field][k] = v;
    };
    let mut top = Vec::new();
    for (f, w) in fields(raw)? {
        match (f, w, secret) {
            (1, Wire::Bytes(v), _) => top.push(("metadata", object_meta(v)?)),
            (2, Wire::Bytes(v), true) => {
                let (k, v) = map_entry(v)?;
                put("data", k, json!(base64(v)));
            }
            (2, Wire::Bytes(v), false) => {
                let (k, v) = map_entry(v)?;
                put("data", k, text(v));
            }
            (3, Wire::Bytes(v), true) => top.push(("type", text(v))),
            (3, Wire::Bytes(v), false) => {
                let (k, v) = map_entry(v)?;
                put("binaryData", k, json!(base64(v)));
            }
            (4, Wire::Bytes(v), true) => {
                let (k, v) = map_entry(v)?;
                put("stringData", k, text(v));
            }
            (5, Wire::Varint(v), true) | (4, Wire::Varint(v), false) => {
                top.push(("immutable", json!(v != 0)))
            }
            _ => {}
        }
    }
    for (k, v) in top {
        obj[k] = v;
    }
    Ok(obj)
}

/// Decode a `application/vnd.kubernetes.protobuf` request body into the JSON object.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or("the body lacks the k8s protobuf envelope")?;
    let (mut kind, mut raw) = (String::new(), &[][..]);
    for (f, w) in fields(envelope)? {
        match (f, w) {
            (1, Wire::Bytes(type_meta)) => {
                for (tf, tw) in fields(type_meta)? {
                    if let (2, Wire::Bytes(k)) = (tf, tw) {
                        kind = String::from_utf8_lossy(k).into_owned();
                    }
                }
            }
            (2, Wire::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    match kind.as_str() {
        "Secret" | "ConfigMap" => secret_or_configmap(&kind, raw),
        other => Err(format!(
            "the API double decodes protobuf only for Secret and ConfigMap, not {other:?}"
        )),
    }
}
