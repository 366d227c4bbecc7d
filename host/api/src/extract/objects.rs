//! How a parsed JSON body becomes the handler's type.
//!
//! Two differences from serde's own rules, both so that the body means what
//! the OpenAPI document says it means:
//!
//! - serde's derived `Deserialize` for a struct also accepts a sequence and
//!   takes the fields by position, so `[null, 5]` would pass for
//!   `{"daily": null, "monthly": 5}`. No client of this API means that: an
//!   array where the document asks for an object is answered with 400. The
//!   check applies to the body's top level, the type the handler names;
//!   nested structs keep serde's rules.
//! - JSON Schema's `integer` includes `1.0`, which serde refuses for an
//!   integer field. A body that fails only for that is read again with its
//!   whole-number floats as integers (free-form bodies are left as sent).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Why a body does not fit the handler's type, with the field's path.
pub type BodyError = serde_path_to_error::Error<serde_json::Error>;

/// Reads `T` from a parsed body by the rules above.
pub fn read<T: de::DeserializeOwned>(body: Value) -> Result<T, BodyError> {
    let first = serde_path_to_error::deserialize::<_, ObjectBody<T>>(&body);
    match first {
        Ok(ObjectBody(value)) => Ok(value),
        Err(error) => {
            let mut whole = body;
            if !integral_floats_to_integers(&mut whole) {
                return Err(error);
            }
            serde_path_to_error::deserialize::<_, ObjectBody<T>>(&whole)
                .map(|ObjectBody(value)| value)
                .map_err(|_| error)
        }
    }
}

/// Rewrites every float with no fractional part (and exactly representable)
/// as an integer; says whether there was one.
fn integral_floats_to_integers(value: &mut Value) -> bool {
    /// Above 2^53 a float no longer stands for one integer.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Number(number) if number.is_f64() => {
            let Some(float) = number.as_f64() else {
                return false;
            };
            if float.fract() != 0.0 || float.abs() > EXACT {
                return false;
            }
            // In range by the check above, so the cast is exact.
            *number = serde_json::Number::from(float as i64);
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, item| integral_floats_to_integers(item) | any),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |any, item| integral_floats_to_integers(item) | any),
        _ => false,
    }
}

/// What an array in place of an object is answered with.
pub const NOT_AN_OBJECT: &str = "expected a JSON object, not an array";

/// `T` read from a body whose top level must be an object where `T` is a
/// struct (any other `T`, such as a list or free-form JSON, reads as usual).
struct ObjectBody<T>(T);

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for ObjectBody<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(StructsFromObjects(deserializer)).map(ObjectBody)
    }
}

/// A deserializer that hands a struct's visitor maps but no sequences, and
/// passes everything else through unchanged.
struct StructsFromObjects<D>(D);

/// Passes each listed `deserialize_*` method through to the inner deserializer.
macro_rules! pass_through {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for StructsFromObjects<D> {
    type Error = D::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(name, fields, NoSequence(visitor))
    }

    pass_through! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A struct's visitor that refuses the sequence form.
struct NoSequence<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for NoSequence<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(formatter)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<V::Value, A::Error> {
        Err(de::Error::custom(NOT_AN_OBJECT))
    }
}

#[cfg(test)]
mod tests {

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Limits {
        daily: Option<u32>,
        monthly: Option<u32>,
    }

    fn read<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
        let value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        super::read(value).map_err(|e| e.to_string())
    }

    #[test]
    fn a_struct_is_read_from_an_object_only() {
        assert_eq!(
            read::<Limits>(r#"{"daily": 1}"#),
            Ok(Limits {
                daily: Some(1),
                monthly: None
            })
        );
        let refused = read::<Limits>("[null, 5]").expect_err("array for a struct");
        assert!(refused.contains(super::NOT_AN_OBJECT), "{refused}");
        assert!(read::<Limits>(r#""x""#).is_err());
    }

    #[test]
    fn whole_number_floats_fill_integer_fields() {
        assert_eq!(
            read::<Limits>(r#"{"daily": 3.0, "monthly": 1e2}"#),
            Ok(Limits {
                daily: Some(3),
                monthly: Some(100)
            })
        );
        let refused = read::<Limits>(r#"{"daily": 2.5}"#).expect_err("a fraction");
        assert!(refused.starts_with("daily: "), "{refused}");
        // Free-form bodies are kept as sent.
        assert_eq!(
            read::<serde_json::Value>(r#"{"t": 1.0}"#),
            Ok(serde_json::json!({"t": 1.0}))
        );
    }

    #[test]
    fn other_types_read_as_usual() {
        assert_eq!(read::<Vec<u8>>("[1, 2]"), Ok(vec![1, 2]));
        assert_eq!(read::<serde_json::Value>("[1]"), Ok(serde_json::json!([1])));
        assert_eq!(read::<Option<u8>>("null"), Ok(None));
        // Nested structs keep serde's rules: the check is the body's top level.
        assert_eq!(
            read::<Vec<Limits>>(r#"[{"daily": 2}]"#).map(|l| l.len()),
            Ok(1)
        );
    }
}
