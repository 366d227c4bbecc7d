//! The set of tools a plugin offers, built from typed Rust functions.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ToolError;
use crate::schema::parameters_schema;

/// What the host learns about one tool from `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolInfo {
    /// The name agents call the tool by, unique across all installed tools.
    pub name: String,
    /// What the tool does, written for a language model deciding whether to
    /// call it.
    pub description: String,
    /// The JSON Schema of the arguments object, as JSON text.
    pub parameters_schema: String,
}

/// A type-erased tool: JSON text in, JSON text out.
type Handler = Box<dyn Fn(&str) -> Result<String, ToolError> + Send + Sync>;

struct Entry {
    name: String,
    description: String,
    /// Generates the parameters' JSON Schema. Only `describe` needs it, and
    /// every call runs in a fresh instance that builds `Tools` again, so it
    /// is generated on demand rather than on every call.
    schema: fn() -> String,
    handler: Handler,
}

/// The tools of a plugin, in the order they were added.
///
/// Build it in the function you pass to [`export_plugin!`](crate::export_plugin):
///
/// ```
/// use talon_sdk::{ToolError, Tools};
///
/// /// Arguments of `add`.
/// #[talon_sdk::args]
/// struct AddArgs {
///     /// The numbers to add.
///     numbers: Vec<f64>,
/// }
///
/// fn add(args: AddArgs) -> Result<f64, ToolError> {
///     Ok(args.numbers.iter().sum())
/// }
///
/// fn tools() -> Tools {
///     Tools::new().tool("add", "Adds numbers.", add)
/// }
///
/// let out = tools().invoke("add", r#"{"numbers": [1, 2.5]}"#);
/// assert_eq!(out, Ok("3.5".to_string()));
/// ```
#[derive(Default)]
pub struct Tools {
    entries: Vec<Entry>,
}

impl Tools {
    /// An empty set of tools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool implemented by `function`.
    ///
    /// The JSON Schema of `A` becomes the tool's parameter schema; doc
    /// comments on `A`'s fields become property descriptions, which models
    /// read, so write them. Arguments that do not deserialize into `A` are
    /// answered with [`ToolError::InvalidArguments`] carrying serde's message,
    /// without calling `function`. The `Ok` value is returned as JSON text.
    ///
    /// # Panics
    ///
    /// Panics if a tool with the same name was already added: that is a bug
    /// in the plugin, found the first time it is described.
    pub fn tool<A, R, F>(mut self, name: &str, description: &str, function: F) -> Self
    where
        A: DeserializeOwned + JsonSchema + 'static,
        R: Serialize + 'static,
        F: Fn(A) -> Result<R, ToolError> + Send + Sync + 'static,
    {
        assert!(
            self.entries.iter().all(|e| e.name != name),
            "tool `{name}` is added twice"
        );
        let schema: fn() -> String = || parameters_schema::<A>().to_string();
        let handler: Handler = Box::new(move |arguments: &str| {
            let args = parse_arguments::<A>(arguments)?;
            let output = function(args)?;
            serde_json::to_string(&output)
                .map_err(|e| ToolError::Failed(format!("cannot encode the result as JSON: {e}")))
        });
        self.entries.push(Entry {
            name: name.to_string(),
            description: description.to_string(),
            schema,
            handler,
        });
        self
    }

    /// Describes every tool, in the order they were added.
    pub fn describe(&self) -> Vec<ToolInfo> {
        self.entries
            .iter()
            .map(|e| ToolInfo {
                name: e.name.clone(),
                description: e.description.clone(),
                parameters_schema: (e.schema)(),
            })
            .collect()
    }

    /// Calls the tool `name` with JSON `arguments` and returns its JSON result.
    pub fn invoke(&self, name: &str, arguments: &str) -> Result<String, ToolError> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
                ToolError::NotFound(format!(
                    "no tool `{name}` in this plugin (it has: {})",
                    known.join(", ")
                ))
            })?;
        (entry.handler)(arguments)
    }
}

/// Parses tool arguments. An empty string means "no arguments" and is read
/// as `{}`, because hosts and models differ on how they send nothing.
fn parse_arguments<A: DeserializeOwned>(arguments: &str) -> Result<A, ToolError> {
    let text = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    serde_json::from_str(text).or_else(|error| {
        // A tool without arguments (`()`) accepts an empty object too.
        if text.trim() == "{}"
            && let Ok(unit) = serde_json::from_str::<A>("null")
        {
            return Ok(unit);
        }
        Err(ToolError::InvalidArguments(error.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    struct Greet {
        /// Who to greet.
        name: String,
        #[serde(default)]
        times: Option<u32>,
    }

    fn greet(args: Greet) -> Result<String, ToolError> {
        if args.name.is_empty() {
            return Err(ToolError::InvalidArguments("name is empty".into()));
        }
        let times = args.times.unwrap_or(1) as usize;
        Ok(vec![format!("Hello, {}!", args.name); times].join(" "))
    }

    fn now(_: ()) -> Result<u64, ToolError> {
        Ok(42)
    }

    fn tools() -> Tools {
        Tools::new()
            .tool("greet", "Greets someone.", greet)
            .tool("now", "The answer.", now)
    }

    #[test]
    fn describes_tools_in_order_with_schemas() {
        let described = tools().describe();
        assert_eq!(described.len(), 2);
        assert_eq!(described[0].name, "greet");
        assert_eq!(described[0].description, "Greets someone.");
        let schema: serde_json::Value =
            serde_json::from_str(&described[0].parameters_schema).unwrap();
        assert_eq!(schema["properties"]["name"]["type"], "string");
        assert_eq!(described[1].name, "now");
    }

    #[test]
    fn invokes_with_typed_arguments_and_json_result() {
        let out = tools().invoke("greet", r#"{"name":"Ada","times":2}"#);
        assert_eq!(out, Ok(r#""Hello, Ada! Hello, Ada!""#.to_string()));
        assert_eq!(tools().invoke("now", "{}"), Ok("42".to_string()));
        assert_eq!(tools().invoke("now", ""), Ok("42".to_string()));
    }

    #[test]
    fn malformed_arguments_are_invalid_arguments() {
        let Err(ToolError::InvalidArguments(message)) = tools().invoke("greet", r#"{"nam":"x"}"#)
        else {
            panic!("expected invalid-arguments");
        };
        assert!(message.contains("missing field `name`"), "{message}");
        let Err(ToolError::InvalidArguments(message)) = tools().invoke("greet", "{not json") else {
            panic!("expected invalid-arguments");
        };
        assert!(message.contains("key must be a string"), "{message}");
    }

    #[test]
    fn errors_from_the_function_pass_through() {
        assert_eq!(
            tools().invoke("greet", r#"{"name":""}"#),
            Err(ToolError::InvalidArguments("name is empty".into()))
        );
    }

    #[test]
    fn unknown_tool_is_not_found_and_lists_the_known_ones() {
        let Err(ToolError::NotFound(message)) = tools().invoke("nope", "{}") else {
            panic!("expected not-found");
        };
        assert!(message.contains("greet, now"), "{message}");
    }

    #[test]
    #[should_panic(expected = "added twice")]
    fn duplicate_names_are_a_bug() {
        let _ = Tools::new().tool("now", "a", now).tool("now", "b", now);
    }
}
