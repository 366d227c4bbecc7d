//! A small JSON path language for picking values out of a document:
//! `$.items[0].name`, `items[*].id`, `["odd key"]`, `[-1]` (last element),
//! `.*` (every member) and `..name` (every `name` at any depth).

use std::fmt;

use talon_sdk::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
    Wildcard,
    /// Applies the inner step to the value and all its descendants.
    Descendants(Box<Step>),
}

/// A path that does not parse; the position is a character offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "path, at character {}: {}", self.position, self.message)
    }
}

/// Returns every value `path` selects in `document`, in document order.
pub fn query<'a>(document: &'a Value, path: &str) -> Result<Vec<&'a Value>, PathError> {
    let steps = parse(path)?;
    let mut current = vec![document];
    for step in &steps {
        let mut next = Vec::new();
        for value in current {
            apply(step, value, &mut next);
        }
        current = next;
    }
    Ok(current)
}

fn apply<'a>(step: &Step, value: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Key(key) => {
            if let Some(v) = value.as_object().and_then(|o| o.get(key)) {
                out.push(v);
            }
        }
        Step::Index(index) => {
            if let Some(items) = value.as_array() {
                let len = items.len() as i64;
                let i = if *index < 0 { len + index } else { *index };
                if (0..len).contains(&i) {
                    out.push(&items[i as usize]);
                }
            }
        }
        Step::Wildcard => match value {
            Value::Array(items) => out.extend(items.iter()),
            Value::Object(members) => out.extend(members.values()),
            _ => {}
        },
        Step::Descendants(inner) => {
            let mut stack = vec![value];
            while let Some(v) = stack.pop() {
                apply(inner, v, out);
                match v {
                    Value::Array(items) => stack.extend(items.iter().rev()),
                    Value::Object(members) => {
                        let children: Vec<&Value> = members.values().collect();
                        stack.extend(children.into_iter().rev());
                    }
                    _ => {}
                }
            }
        }
    }
}

fn parse(path: &str) -> Result<Vec<Step>, PathError> {
    let chars: Vec<char> = path.trim().chars().collect();
    let error = |position: usize, message: &str| PathError {
        position,
        message: message.into(),
    };
    let mut steps = Vec::new();
    let mut i = 0;
    if chars.first() == Some(&'$') {
        i = 1;
    }
    let mut first = true;
    while i < chars.len() {
        let descend = chars[i..].starts_with(&['.', '.']);
        let step = if descend || chars[i] == '.' {
            i += if descend { 2 } else { 1 };
            match chars.get(i) {
                Some('*') => {
                    i += 1;
                    Step::Wildcard
                }
                Some('[') => bracket(&chars, &mut i)?,
                Some(_) => {
                    Step::Key(name(&chars, &mut i).ok_or_else(|| error(i, "expected a name"))?)
                }
                None => return Err(error(i, "the path ends after `.`")),
            }
        } else if chars[i] == '[' {
            bracket(&chars, &mut i)?
        } else if first {
            Step::Key(name(&chars, &mut i).ok_or_else(|| error(i, "expected a name"))?)
        } else {
            return Err(error(i, &format!("unexpected `{}`", chars[i])));
        };
        steps.push(if descend {
            Step::Descendants(Box::new(step))
        } else {
            step
        });
        first = false;
    }
    Ok(steps)
}

/// A member name after `.`: anything up to the next `.` or `[`.
fn name(chars: &[char], i: &mut usize) -> Option<String> {
    let start = *i;
    while *i < chars.len() && chars[*i] != '.' && chars[*i] != '[' {
        *i += 1;
    }
    let name: String = chars[start..*i].iter().collect();
    let name = name.trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// `[0]`, `[-1]`, `[*]`, `["key"]` or `['key']`, starting at `[`.
fn bracket(chars: &[char], i: &mut usize) -> Result<Step, PathError> {
    let open = *i;
    let close = chars[open..]
        .iter()
        .position(|&c| c == ']')
        .map(|p| open + p)
        .ok_or(PathError {
            position: open,
            message: "`[` is never closed".into(),
        })?;
    let inside: String = chars[open + 1..close].iter().collect();
    let inside = inside.trim();
    *i = close + 1;
    if inside == "*" {
        return Ok(Step::Wildcard);
    }
    for quote in ['"', '\''] {
        if let Some(key) = inside
            .strip_prefix(quote)
            .and_then(|s| s.strip_suffix(quote))
        {
            return Ok(Step::Key(key.to_string()));
        }
    }
    inside.parse().map(Step::Index).map_err(|_| PathError {
        position: open,
        message: format!("`[{inside}]` is not an index, `*` or a quoted key"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use talon_sdk::json;

    fn doc() -> Value {
        json!({
            "store": {
                "books": [
                    {"title": "A", "price": 8, "tags": ["x"]},
                    {"title": "B", "price": 12},
                    {"title": "C", "price": 5, "meta": {"title": "inner"}}
                ],
                "odd key": true
            }
        })
    }

    fn q(path: &str) -> Vec<Value> {
        let d = doc();
        query(&d, path).unwrap().into_iter().cloned().collect()
    }

    #[test]
    fn keys_indexes_and_wildcards() {
        assert_eq!(q("$.store.books[0].title"), vec![json!("A")]);
        assert_eq!(q("store.books[-1].price"), vec![json!(5)]);
        assert_eq!(
            q("store.books[*].price"),
            vec![json!(8), json!(12), json!(5)]
        );
        assert_eq!(q("$.store['odd key']"), vec![json!(true)]);
        assert_eq!(q("$.store[\"books\"][1].title"), vec![json!("B")]);
        assert_eq!(q("$").len(), 1);
        assert_eq!(q("store.*").len(), 2);
    }

    #[test]
    fn descendants_in_document_order() {
        assert_eq!(
            q("$..title"),
            vec![json!("A"), json!("B"), json!("C"), json!("inner")]
        );
        assert_eq!(q("..tags[0]"), vec![json!("x")]);
    }

    #[test]
    fn missing_things_select_nothing() {
        assert!(q("store.nope").is_empty());
        assert!(q("store.books[9]").is_empty());
        assert!(q("store.books.title").is_empty());
    }

    #[test]
    fn bad_paths_say_where() {
        let d = doc();
        assert_eq!(query(&d, "store.").unwrap_err().position, 6);
        assert!(
            query(&d, "store[abc]")
                .unwrap_err()
                .message
                .contains("not an index")
        );
        assert!(
            query(&d, "a[0")
                .unwrap_err()
                .message
                .contains("never closed")
        );
    }
}
