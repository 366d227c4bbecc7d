//! JSON Schemas of tool arguments, as language models read them.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;

/// Generates the JSON Schema of a tool's arguments type.
///
/// Subschemas are inlined rather than referenced through `$defs`, because
/// several model providers reject or ignore `$ref` in function parameters.
/// The `$schema` and `title` keys are dropped: the title is the Rust type's
/// name, which means nothing to a model, and the dialect is implied.
pub fn parameters_schema<T: JsonSchema>() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .into_generator();
    let mut value = generator.into_root_schema_for::<T>().to_value();
    if let Some(object) = value.as_object_mut() {
        object.remove("title");
        // A tool that takes nothing is still called with an object.
        if object.get("type").and_then(|t| t.as_str()) == Some("null") {
            object.insert("type".into(), "object".into());
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    /// How to greet.
    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    enum Tone {
        Warm,
        Formal,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Greet {
        /// Who to greet.
        name: String,
        #[serde(default)]
        tone: Option<Tone>,
    }

    #[test]
    fn schema_is_inlined_and_untitled() {
        let schema = parameters_schema::<Greet>();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["name"]));
        assert_eq!(schema["properties"]["name"]["description"], "Who to greet.");
        assert!(schema.get("title").is_none());
        assert!(schema.get("$schema").is_none());
        assert!(schema.get("$defs").is_none());
        let tone = schema["properties"]["tone"].to_string();
        assert!(tone.contains("Warm") && tone.contains("Formal"), "{tone}");
    }

    #[test]
    fn unit_arguments_are_an_object() {
        assert_eq!(parameters_schema::<()>()["type"], "object");
    }
}
