//! The example tool of the Talon plugin guide, in Rust: counts the words of a
//! text and reports the most frequent ones. The same tool exists in Python
//! (`examples/plugins/python`) and JavaScript (`examples/plugins/js`).

use std::collections::HashMap;

use talon_sdk::{ToolError, Tools};

/// Arguments of `word_count_rust`.
#[talon_sdk::args]
struct WordCountArgs {
    /// The text to count the words of.
    text: String,
    /// How many of the most frequent words to list (default 3, at most 100).
    #[serde(default = "default_top")]
    top: u32,
}

fn default_top() -> u32 {
    3
}

/// One word and how often it occurs.
#[talon_sdk::output]
struct WordFrequency {
    word: String,
    count: u32,
}

/// The result of `word_count`.
#[talon_sdk::output]
struct WordCount {
    words: u32,
    characters: u32,
    top: Vec<WordFrequency>,
}

fn word_count(args: WordCountArgs) -> Result<WordCount, ToolError> {
    if args.top > 100 {
        return Err(ToolError::invalid_arguments("top must be at most 100"));
    }
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut words = 0;
    for word in args.text.split_whitespace() {
        let word = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if word.is_empty() {
            continue;
        }
        words += 1;
        *counts.entry(word).or_default() += 1;
    }
    let mut top: Vec<WordFrequency> = counts
        .into_iter()
        .map(|(word, count)| WordFrequency { word, count })
        .collect();
    // Most frequent first; ties in alphabetical order so results are stable.
    top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    top.truncate(args.top as usize);
    talon_sdk::log::debug(format!("counted {words} words"));
    Ok(WordCount {
        words,
        characters: args.text.chars().count() as u32,
        top,
    })
}

fn tools() -> Tools {
    Tools::new().tool(
        "word_count_rust",
        "Counts the words and characters of a text and lists the most frequent words.",
        word_count,
    )
}

talon_sdk::export_plugin!(tools);

#[cfg(test)]
mod tests {
    use super::*;

    // Tools run natively too: `cargo test -p word-count-rust`.
    #[test]
    fn counts_and_ranks_words() {
        let out = tools().invoke(
            "word_count_rust",
            r#"{"text": "The cat and the hat.", "top": 2}"#,
        );
        assert_eq!(
            out,
            Ok(r#"{"words":5,"characters":20,"top":[{"word":"the","count":2},{"word":"and","count":1}]}"#.into())
        );
    }

    #[test]
    fn refuses_bad_arguments() {
        assert!(matches!(
            tools().invoke("word_count_rust", r#"{"text": "x", "top": 500}"#),
            Err(ToolError::InvalidArguments(_))
        ));
        assert!(matches!(
            tools().invoke("word_count_rust", r#"{"txt": "x"}"#),
            Err(ToolError::InvalidArguments(_))
        ));
    }
}
