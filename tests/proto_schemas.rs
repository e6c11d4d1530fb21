//! warez-pipe's own protobuf schemas (`proto/*.proto`) against the reference packages' published
//! descriptors (`onnx`, `tensorflow`): every message declared, nested ones and map entries too,
//! must exist there, and every field declared must have the reference's number, type, label,
//! message or enum type and oneof; every enum value declared must have the reference's number.
//! A difference fails the test naming the message and field.
//!
//! Our side is the `FileDescriptorSet` build.rs compiled the schemas into (with protox, the same
//! parse the generated Rust types come from); the reference side is dumped as JSON by
//! `tests/interop/proto_descriptors.py`.

#[path = "reference/mod.rs"]
mod reference;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use serde::Deserialize;

/// The descriptors of `proto/*.proto`, as build.rs compiled them.
const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/proto_descriptors.bin"));

/// What the test compares of a field (besides its name).
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Field {
    number: i32,
    /// `TYPE_INT64`, `TYPE_MESSAGE`, …
    #[serde(rename = "type")]
    kind: String,
    /// `LABEL_OPTIONAL` or `LABEL_REPEATED` (proto2's `LABEL_REQUIRED` would differ from both).
    label: String,
    /// `.package.Message` of a message or enum field, empty for scalars.
    type_name: String,
    /// The oneof the field belongs to.
    oneof: Option<String>,
}

/// Fields or enum values by name, of a message or enum given by its full name.
type Fields = BTreeMap<String, Field>;
type Values = BTreeMap<String, i32>;

/// Every message (with its fields) and enum (with its values) of our schemas, by full name.
#[derive(Debug, Default)]
struct Schemas {
    messages: BTreeMap<String, Fields>,
    enums: BTreeMap<String, Values>,
}

/// The reference's answer: `null` for a name it does not know.
#[derive(Debug, Deserialize)]
struct Reference {
    messages: BTreeMap<String, Option<Fields>>,
    enums: BTreeMap<String, Option<Values>>,
}

fn ours() -> Schemas {
    let descriptors = FileDescriptorSet::decode(DESCRIPTORS).expect("build.rs's descriptor set");
    let mut schemas = Schemas::default();
    for file in &descriptors.file {
        for message in &file.message_type {
            add_message(file.package(), message, &mut schemas);
        }
        for enumeration in &file.enum_type {
            add_enum(file.package(), enumeration, &mut schemas);
        }
    }
    schemas
}

fn add_message(scope: &str, message: &DescriptorProto, schemas: &mut Schemas) {
    let name = format!("{scope}.{}", message.name());
    let fields = message
        .field
        .iter()
        .map(|field| {
            let oneof = field
                .oneof_index
                .filter(|_| !field.proto3_optional())
                .map(|index| message.oneof_decl[index as usize].name().to_string());
            let described = Field {
                number: field.number(),
                kind: field.r#type().as_str_name().to_string(),
                label: field.label().as_str_name().to_string(),
                type_name: field.type_name().to_string(),
                oneof,
            };
            (field.name().to_string(), described)
        })
        .collect();
    for nested in &message.nested_type {
        add_message(&name, nested, schemas);
    }
    for enumeration in &message.enum_type {
        add_enum(&name, enumeration, schemas);
    }
    schemas.messages.insert(name, fields);
}

fn add_enum(scope: &str, enumeration: &EnumDescriptorProto, schemas: &mut Schemas) {
    let values = enumeration
        .value
        .iter()
        .map(|value| (value.name().to_string(), value.number()))
        .collect();
    schemas
        .enums
        .insert(format!("{scope}.{}", enumeration.name()), values);
}

/// The reference descriptors of every message and enum of `ours`, asked once per test binary
/// (importing TensorFlow takes seconds).
fn reference(ours: &Schemas) -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/proto_descriptors.py");
        let names = ours
            .messages
            .keys()
            .map(|name| format!("message:{name}"))
            .chain(ours.enums.keys().map(|name| format!("enum:{name}")));
        let output = Command::new(reference::test_python())
            .arg(&script)
            .args(names)
            .env("TF_CPP_MIN_LOG_LEVEL", "3")
            .output()
            .expect("running WAREZ_TEST_PYTHON");
        assert!(
            output.status.success(),
            "proto_descriptors.py failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("proto_descriptors.py's JSON")
    })
}

/// Every way `ours` differs from `reference`, one line each, naming the message and field.
fn differences(ours: &Schemas, reference: &Reference) -> Vec<String> {
    let mut differences = Vec::new();
    for (message, fields) in &ours.messages {
        let Some(Some(reference_fields)) = reference.messages.get(message) else {
            differences.push(format!("message {message}: not in the reference packages"));
            continue;
        };
        for (name, field) in fields {
            let Some(expected) = reference_fields.get(name) else {
                differences.push(format!("{message}.{name}: the reference has no such field"));
                continue;
            };
            let mut differing = Vec::new();
            let mut compare = |what: &str, ours: String, theirs: String| {
                if ours != theirs {
                    differing.push(format!("{what} {ours}, the reference's {theirs}"));
                }
            };
            compare(
                "number",
                field.number.to_string(),
                expected.number.to_string(),
            );
            compare("type", field.kind.clone(), expected.kind.clone());
            compare("label", field.label.clone(), expected.label.clone());
            compare(
                "type name",
                field.type_name.clone(),
                expected.type_name.clone(),
            );
            compare(
                "oneof",
                format!("{:?}", field.oneof),
                format!("{:?}", expected.oneof),
            );
            if !differing.is_empty() {
                differences.push(format!("{message}.{name}: {}", differing.join("; ")));
            }
        }
    }
    for (enumeration, values) in &ours.enums {
        let Some(Some(reference_values)) = reference.enums.get(enumeration) else {
            differences.push(format!("enum {enumeration}: not in the reference packages"));
            continue;
        };
        for (name, number) in values {
            match reference_values.get(name) {
                Some(expected) if expected == number => {}
                Some(expected) => differences.push(format!(
                    "{enumeration}.{name}: number {number}, the reference's {expected}"
                )),
                None => differences.push(format!(
                    "{enumeration}.{name}: the reference has no such value"
                )),
            }
        }
    }
    differences
}

#[test]
fn every_declared_message_field_and_enum_value_is_the_reference_packages_own() {
    let ours = ours();
    for message in [
        "onnx.ModelProto",
        "onnx.TensorShapeProto.Dimension",
        "tensorflow.SavedModel",
        "tensorflow.NodeDef.AttrEntry",
        "tensorflow.BundleHeaderProto",
    ] {
        assert!(
            ours.messages.contains_key(message),
            "{message} is missing from the compiled schemas"
        );
    }
    let differences = differences(&ours, reference(&ours));
    assert!(
        differences.is_empty(),
        "proto/*.proto differs from the reference descriptors:\n{}",
        differences.join("\n")
    );
}

#[test]
fn a_wrong_number_type_oneof_name_or_value_is_reported_by_message_and_field() {
    let mut ours = ours();
    let reference = reference(&ours);
    fn field<'s>(ours: &'s mut Schemas, message: &str, name: &str) -> &'s mut Field {
        ours.messages
            .get_mut(message)
            .and_then(|fields| fields.get_mut(name))
            .unwrap_or_else(|| panic!("{message}.{name} is declared"))
    }
    field(&mut ours, "onnx.TensorProto", "dims").number = 3;
    field(&mut ours, "onnx.TypeProto", "tensor_type").oneof = None;
    field(&mut ours, "tensorflow.AttrValue", "type").kind = "TYPE_INT32".into();
    let node_def = ours.messages.get_mut("tensorflow.NodeDef").unwrap();
    let op = node_def.remove("op").unwrap();
    node_def.insert("operation".into(), op);
    ours.enums
        .get_mut("tensorflow.DataType")
        .unwrap()
        .insert("DT_INT32".into(), 4);
    ours.messages
        .insert("tensorflow.NotAMessage".into(), Fields::new());

    let mut differences = differences(&ours, reference);
    differences.sort();
    assert_eq!(
        differences,
        [
            "message tensorflow.NotAMessage: not in the reference packages",
            "onnx.TensorProto.dims: number 3, the reference's 1",
            "onnx.TypeProto.tensor_type: oneof None, the reference's Some(\"value\")",
            "tensorflow.AttrValue.type: type TYPE_INT32, the reference's TYPE_ENUM",
            "tensorflow.DataType.DT_INT32: number 4, the reference's 3",
            "tensorflow.NodeDef.operation: the reference has no such field",
        ]
    );
}
