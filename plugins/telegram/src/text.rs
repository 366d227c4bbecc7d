//! Splitting a reply into Telegram messages: at most 4096 UTF-16 code
//! units each (Telegram's limit), by the SDK's splitter.

/// Telegram's limit of one text message, in UTF-16 code units.
pub const MAX_UNITS: usize = 4096;

/// The messages `text` becomes.
pub fn split(text: &str) -> Vec<String> {
    talon_sdk::channel::split_text(text, MAX_UNITS, char::len_utf16)
}
