//! Turns generated token ids into text deltas that are always whole UTF-8.
//!
//! A byte-level BPE token can hold part of a character (an emoji is often split over two or
//! three tokens). Decoding the tokens since the last emitted point and holding back while the text
//! ends in U+FFFD (an incomplete character) yields only complete characters, in order.

use tokenizers::Tokenizer;

use super::LocalModelError;

#[derive(Default)]
pub struct TextStream {
    tokens: Vec<u32>,
    /// Start of the window that is decoded each step.
    prev: usize,
    /// Tokens up to here have been emitted.
    current: usize,
}

impl TextStream {
    pub fn push(
        &mut self,
        tokenizer: &Tokenizer,
        token: u32,
    ) -> Result<Option<String>, LocalModelError> {
        let emitted = self.decode(tokenizer, self.prev, self.current)?;
        self.tokens.push(token);
        let text = self.decode(tokenizer, self.prev, self.tokens.len())?;
        if text.len() > emitted.len() && !text.ends_with('\u{FFFD}') && text.starts_with(&emitted) {
            let delta = text[emitted.len()..].to_owned();
            self.prev = self.current;
            self.current = self.tokens.len();
            Ok(Some(delta))
        } else {
            Ok(None)
        }
    }

    fn decode(
        &self,
        tokenizer: &Tokenizer,
        from: usize,
        to: usize,
    ) -> Result<String, LocalModelError> {
        if from >= to {
            return Ok(String::new());
        }
        tokenizer
            .decode(&self.tokens[from..to], true)
            .map_err(|e| LocalModelError::Inference(e.to_string()))
    }
}
