//! The model's tokenizer, rebuilt from the vocabulary and merges stored in the GGUF file.
//!
//! candle's own GGUF tokenizer helper does not apply SmolLM2's pre-tokenizer ("smollm": every digit
//! on its own, then GPT-2 byte-level splitting with no prefix space) and gives wrong ids, so the
//! pipeline is assembled here from the `tokenizers` crate's parts, as the model's tokenizer.json
//! describes it.

use candle_core::quantized::gguf_file;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use super::LocalModelError;

/// GGUF token types (llama.cpp's `llama_token_type`): 3 is a control token such as `<|im_end|>`.
const TOKEN_TYPE_CONTROL: i32 = 3;

pub fn from_gguf(content: &gguf_file::Content) -> Result<Tokenizer, LocalModelError> {
    let strings = |key: &str| -> Result<Vec<String>, LocalModelError> {
        let value = content
            .metadata
            .get(key)
            .ok_or_else(|| LocalModelError::Format(format!("{key} is missing")))?;
        let items = value
            .to_vec()
            .map_err(|e| LocalModelError::Format(format!("{key}: {e}")))?;
        items
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| LocalModelError::Format(format!("{key}: {e}")))
            })
            .collect()
    };
    let model = content
        .metadata
        .get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .cloned();
    if model.as_deref() != Some("gpt2") {
        return Err(LocalModelError::Format(format!(
            "unsupported tokenizer {model:?}; expected gpt2-style BPE"
        )));
    }
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| match m.split_once(' ') {
            Some((a, b)) => Ok((a.to_owned(), b.to_owned())),
            None => Err(LocalModelError::Format(format!("bad merge {m:?}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| LocalModelError::Format(e.to_string()))?
            .iter()
            .map(|t| t.to_i32().unwrap_or(1))
            .collect(),
        None => vec![1; tokens.len()],
    };

    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| {
            let id = u32::try_from(id)
                .map_err(|_| LocalModelError::Format("more token ids than fit in u32".into()))?;
            Ok((t.clone(), id))
        })
        .collect::<Result<_, LocalModelError>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| LocalModelError::Format(format!("tokenizer: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let specials: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, &t)| t == TOKEN_TYPE_CONTROL)
        .map(|(t, _)| AddedToken::from(t.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| LocalModelError::Format(format!("the special tokens: {e}")))?;
    Ok(tokenizer)
}
