//! `google.protobuf.Struct` ⇄ JSON, for storing a manifest as it was given.

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Number, Value as Json};

/// The JSON form of `object`.
pub fn from_struct(object: &Struct) -> Json {
    Json::Object(
        object
            .fields
            .iter()
            .map(|(key, value)| (key.clone(), from_value(value)))
            .collect::<Map<String, Json>>(),
    )
}

fn from_value(value: &Value) -> Json {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => Number::from_f64(*n).map_or(Json::Null, Json::Number),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(from_value).collect()),
        Some(Kind::StructValue(object)) => from_struct(object),
    }
}

/// `json` as a `Struct`; `None` unless it is an object.
pub fn to_struct(json: &Json) -> Option<Struct> {
    match to_value(json).kind {
        Some(Kind::StructValue(object)) => Some(object),
        _ => None,
    }
}

fn to_value(json: &Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        Json::Object(map) => Kind::StructValue(Struct {
            fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
        }),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let json = serde_json::json!({"a": {"b": [1.5, "x", true, null]}, "c": {}});
        assert_eq!(to_struct(&json).map(|s| from_struct(&s)), Some(json));
        assert_eq!(to_struct(&serde_json::json!([1])), None);
    }
}
