//! Turns the bytes of generated tokens into text deltas that are always whole UTF-8.
//!
//! A byte-level BPE token can hold part of a character (an emoji is often split over two or
//! three tokens). Bytes are held back while they end inside a character; a sequence that can never
//! be valid becomes U+FFFD rather than stalling the stream.

#[derive(Default)]
pub struct TextStream {
    pending: Vec<u8>,
}

impl TextStream {
    /// Adds one token's bytes; returns the text that is now complete, if any.
    pub fn push(&mut self, bytes: &[u8]) -> Option<String> {
        self.pending.extend_from_slice(bytes);
        let mut text = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(valid) => {
                    text.push_str(valid);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let (valid, rest) = self.pending.split_at(e.valid_up_to());
                    // `valid` was just checked, so this cannot fail; lossy keeps it panic-free.
                    text.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        // The end is an unfinished character: wait for the next token.
                        None => {
                            self.pending = rest.to_vec();
                            break;
                        }
                        Some(bad) => {
                            text.push('\u{FFFD}');
                            self.pending = rest[bad..].to_vec();
                        }
                    }
                }
            }
        }
        (!text.is_empty()).then_some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_split_over_tokens_come_out_whole() {
        let mut stream = TextStream::default();
        let crab = "🦀".as_bytes();
        assert_eq!(stream.push(b"Hi "), Some("Hi ".into()));
        assert_eq!(stream.push(&crab[..1]), None);
        assert_eq!(stream.push(&crab[1..3]), None);
        assert_eq!(stream.push(&crab[3..]), Some("🦀".into()));
        assert_eq!(stream.push("é!".as_bytes()), Some("é!".into()));
    }

    #[test]
    fn invalid_bytes_become_a_replacement_character_and_the_stream_goes_on() {
        let mut stream = TextStream::default();
        assert_eq!(stream.push(b"a\xffb"), Some("a\u{FFFD}b".into()));
        assert_eq!(stream.push(b"\xe2\x82"), None);
        assert_eq!(stream.push(b"\xac"), Some("€".into()));
    }
}
