//! Channels: bridges to chat platforms (the `channel` world of
//! `talon:plugin@0.2.0`).
//!
//! A channel is one long-lived instance per configured channel: the host
//! calls `connect` with the configuration, then `receive` in a loop (each
//! call waits at most the given time for the platform), `send` for
//! replies and `health` to ask whether the platform is still reachable.
//! State lives in statics for the instance's life; if the instance traps,
//! the host starts a fresh one (statics empty) and calls `connect` again.
//!
//! Generate the bindings in the plugin crate with [`channel_world!`](crate::channel_world),
//! implement the generated `Guest` trait, export it with the generated
//! `export!` macro, and reach the platform with [`net`](crate::net):
//!
//! ```ignore
//! mod wit {
//!     talon_sdk::channel_world!();
//! }
//! use wit::exports::talon::plugin::channel_adapter::Guest;
//! use wit::talon::plugin::channel_types::*;
//!
//! struct MyChannel;
//! impl Guest for MyChannel { /* describe, connect, receive, send, ... */ }
//! wit::export!(MyChannel with_types_in wit);
//! ```
//!
//! `plugins/irc` is a complete channel written this way. The manifest says
//! `kind = "channel"`, `wit = "0.2.0"` and lists the sockets it needs
//! under `[permissions] sockets = ["irc.example.org:6667"]`.

/// Version of the WIT package channels are built against; goes in the
/// manifest as `wit = "..."`.
pub const WIT_VERSION: &str = "0.2.0";

/// Splits a reply into pieces a platform accepts: each at most `max`
/// units as `units` counts a character (`char::len_utf8` for bytes,
/// `char::len_utf16` for Telegram's UTF-16 code units), cut at a line break
/// or else a space in the second half of the piece, never inside a
/// character. The pieces joined with the separators cut at give back the
/// text; blank pieces are dropped.
pub fn split_text(text: &str, max: usize, units: impl Fn(char) -> usize) -> Vec<String> {
    let max = max.max(4);
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // The longest prefix that fits, on a character boundary.
        let mut used = 0;
        let mut fit = rest.len();
        for (i, c) in rest.char_indices() {
            used += units(c);
            if used > max {
                fit = i;
                break;
            }
        }
        if fit == rest.len() {
            pieces.push(rest.to_string());
            break;
        }
        let window = &rest[..fit];
        let cut = window
            .rfind('\n')
            .filter(|&i| i >= fit / 2)
            .or_else(|| window.rfind(' ').filter(|&i| i >= fit / 2));
        match cut {
            Some(i) => {
                pieces.push(rest[..i].to_string());
                rest = &rest[i + 1..];
            }
            None => {
                pieces.push(window.to_string());
                rest = &rest[fit..];
            }
        }
    }
    pieces.retain(|p| !p.trim().is_empty());
    pieces
}

#[cfg(test)]
mod tests {
    use super::split_text;

    fn utf16(s: &str) -> usize {
        s.encode_utf16().count()
    }

    #[test]
    fn short_text_is_one_piece_and_blank_is_none() {
        assert_eq!(split_text("hello", 4096, char::len_utf16), vec!["hello"]);
        assert!(split_text("", 4096, char::len_utf16).is_empty());
        assert!(split_text("  \n ", 4096, char::len_utf8).is_empty());
    }

    #[test]
    fn long_text_is_cut_at_spaces_and_fits() {
        let text = "word ".repeat(2000);
        let pieces = split_text(&text, 4096, char::len_utf16);
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|p| utf16(p) <= 4096));
        assert_eq!(pieces.join(" ").trim_end(), text.trim_end());
    }

    #[test]
    fn wide_characters_are_counted_by_the_measure_and_never_cut() {
        let text = "😀".repeat(3000);
        let pieces = split_text(&text, 4096, char::len_utf16);
        assert!(pieces.iter().all(|p| utf16(p) <= 4096));
        assert_eq!(pieces.concat(), text);
        assert_eq!(utf16(&pieces[0]), 4096);
        let pieces = split_text(&text, 1000, char::len_utf8);
        assert!(pieces.iter().all(|p| p.len() <= 1000));
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn a_line_break_is_preferred() {
        let text = format!("{}\n{}", "a".repeat(3000), "b".repeat(3000));
        assert_eq!(
            split_text(&text, 4096, char::len_utf16),
            vec!["a".repeat(3000), "b".repeat(3000)]
        );
    }
}
