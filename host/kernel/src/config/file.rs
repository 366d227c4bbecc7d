//! The config file on disk: read with a size cap, edited in place with its
//! comments kept (`toml_edit`), written atomically.

use std::io::Write;
use std::path::Path;

use super::{Config, ConfigError, DEFAULT_CONFIG_TOML, MAX_CONFIG_BYTES};

pub(super) fn read_config_text(path: &Path) -> Result<String, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| ConfigError::io(path, e))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::Invalid(format!(
            "{} is larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))
}

/// A change to one key of the config file.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The key takes this value.
    Set(serde_json::Value),
    /// These items join the list the key holds (those already in it are skipped).
    Add(Vec<serde_json::Value>),
    /// These items leave the list the key holds (those not in it are skipped).
    Remove(Vec<serde_json::Value>),
}

/// Applies `change` to the dotted `key` of the file at `path`, like
/// [`set_value`]; additions and removals start from the list the file
/// holds now (or the default, when the file does not set the key), and are
/// refused for a key that does not hold a list.
pub fn change_value(path: &Path, key: &str, change: Change) -> Result<Config, ConfigError> {
    let (items, adding) = match change {
        Change::Set(value) => return set_value(path, key, &value),
        Change::Add(items) => (items, true),
        Change::Remove(items) => (items, false),
    };
    let text = if path.exists() {
        read_config_text(path)?
    } else {
        DEFAULT_CONFIG_TOML.to_string()
    };
    let current = serde_json::to_value(Config::parse(&text)?)
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let pointer = format!("/{}", key.replace('.', "/"));
    let mut list = match current.pointer(&pointer) {
        Some(serde_json::Value::Array(list)) => list.clone(),
        Some(_) => {
            return Err(ConfigError::Invalid(format!(
                "`{key}` is not a list: set it instead of adding to or removing from it"
            )));
        }
        None => return Err(ConfigError::UnknownKey(key.to_string())),
    };
    if adding {
        for item in items {
            if !list.contains(&item) {
                list.push(item);
            }
        }
    } else {
        list.retain(|item| !items.contains(item));
    }
    set_value(path, key, &serde_json::Value::Array(list))
}

/// Sets the dotted `key` (for example `rate_limit.api_requests_per_minute`) to the
/// JSON `value` in the file at `path`, keeping its comments. The edited file is
/// validated as a whole before it replaces the old one; on any error nothing is written.
pub fn set_value(path: &Path, key: &str, value: &serde_json::Value) -> Result<Config, ConfigError> {
    let text = if path.exists() {
        read_config_text(path)?
    } else {
        DEFAULT_CONFIG_TOML.to_string()
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| ConfigError::Invalid(e.to_string()))?;
    let parts: Vec<&str> = key.split('.').collect();
    if key.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::UnknownKey(key.to_string()));
    }
    if !schema_has_key(&parts) {
        return Err(ConfigError::UnknownKey(key.to_string()));
    }
    let item = json_to_toml(value).ok_or_else(|| {
        ConfigError::Invalid(format!("`{key}` cannot hold a null or nested null value"))
    })?;
    let (last, sections) = parts
        .split_last()
        .ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
    let mut table = doc.as_table_mut();
    for section in sections {
        let entry = table
            .entry(section)
            .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| {
            ConfigError::Invalid(format!("`{section}` is not a table in the config file"))
        })?;
    }
    match table.get_mut(last) {
        // Replace the value in place so the key's comments and formatting stay.
        Some(toml_edit::Item::Value(existing)) => {
            let decor = existing.decor().clone();
            *existing = item;
            *existing.decor_mut() = decor;
        }
        _ => {
            table.insert(last, toml_edit::Item::Value(item));
        }
    }
    let new_text = doc.to_string();
    let config = Config::parse(&new_text)?;
    write_atomically(path, new_text.as_bytes())?;
    Ok(config)
}

/// Writes (or, with `None`, removes) the table `[<section>.<name>]` of the
/// file at `path` from the JSON object `value` (for map sections such as
/// `mcp_servers`), keeping the rest of the file and its comments. The edited
/// file is validated as a whole before it replaces the old one.
pub fn set_table(
    path: &Path,
    section: &str,
    name: &str,
    value: Option<&serde_json::Value>,
) -> Result<Config, ConfigError> {
    let text = if path.exists() {
        read_config_text(path)?
    } else {
        DEFAULT_CONFIG_TOML.to_string()
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| ConfigError::Invalid(e.to_string()))?;
    let parent = doc
        .entry(section)
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_mut()
        .ok_or_else(|| {
            ConfigError::Invalid(format!("`{section}` is not a table in the config file"))
        })?;
    match value {
        None => {
            parent.remove(name);
        }
        Some(value) => {
            let Some(toml_edit::Value::InlineTable(inline)) = json_to_toml(value) else {
                return Err(ConfigError::Invalid(format!(
                    "`{section}.{name}` must be a table without null values"
                )));
            };
            parent.insert(name, toml_edit::Item::Table(inline.into_table()));
        }
    }
    let new_text = doc.to_string();
    let config = Config::parse(&new_text)?;
    write_atomically(path, new_text.as_bytes())?;
    Ok(config)
}

fn schema_has_key(parts: &[&str]) -> bool {
    let mut value = serde_json::to_value(Config::default()).unwrap_or_default();
    for part in parts {
        match value.get(*part) {
            Some(v) => value = v.clone(),
            None => return false,
        }
    }
    !value.is_object()
}

pub(crate) fn json_to_toml(value: &serde_json::Value) -> Option<toml_edit::Value> {
    use serde_json::Value as J;
    Some(match value {
        J::Null => return None,
        J::Bool(b) => (*b).into(),
        J::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        J::String(s) => s.as_str().into(),
        J::Array(items) => {
            let mut array = toml_edit::Array::new();
            for item in items {
                array.push(json_to_toml(item)?);
            }
            toml_edit::Value::Array(array)
        }
        J::Object(map) => {
            let mut table = toml_edit::InlineTable::new();
            for (k, v) in map {
                table.insert(k, json_to_toml(v)?);
            }
            toml_edit::Value::InlineTable(table)
        }
    })
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new
/// file, never a torn one: write a sibling, fsync it, rename, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ConfigError::io(dir, e))?;
    let tmp = path.with_extension("toml.tmp");
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| ConfigError::io(path, e))
}
