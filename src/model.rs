use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use llm::Usage;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// The reply is being generated; its text grows.
    Streaming,
    Complete,
    /// The user pressed Stop; the text shown until then is kept.
    Stopped,
    /// The provider failed or the server went down mid-reply; partial text is kept.
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Streaming => "streaming",
            Self::Complete => "complete",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "streaming" => Self::Streaming,
            "complete" => Self::Complete,
            "stopped" => Self::Stopped,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// USD per million tokens. See `src/server/prices.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
    #[serde(default)]
    pub cache_write: Option<f64>,
    pub output: f64,
}

/// What the model picker offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMenu {
    pub groups: Vec<ModelGroup>,
    /// The model new conversations use.
    pub default_model: String,
    /// E.g. how to fetch the local model when it is missing.
    pub notices: Vec<String>,
    /// When the prices were taken from the providers' pages.
    pub prices_as_of: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelGroup {
    pub provider: String,
    pub models: Vec<ModelOption>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelOption {
    /// `provider/model`.
    pub id: String,
    pub label: String,
    pub price: Option<Price>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: Uuid,
    pub title: String,
    /// Unix milliseconds.
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: Uuid,
    pub title: String,
    pub model: String,
    pub system_prompt: String,
    pub messages: Vec<MessageView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: Uuid,
    pub turn_id: Uuid,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub model: Option<String>,
    pub usage: Option<Usage>,
    /// The provider gave no usage (a stopped or failed turn): the figures are estimated.
    pub usage_estimated: bool,
    pub cost_usd: Option<f64>,
}

/// One event of a running turn, numbered from 1 within the turn so that a reader can re-attach
/// after the last `seq` it saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnEnvelope {
    pub seq: u32,
    pub event: TurnEvent,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnEvent {
    Started {
        conversation_id: Uuid,
        /// The assistant message this turn writes.
        message_id: Uuid,
        model: String,
    },
    /// The model is busy with other replies; this many are ahead.
    Queued {
        ahead: u32,
    },
    Delta {
        text: String,
    },
    Finished {
        status: MessageStatus,
        error: Option<String>,
        usage: Option<Usage>,
        usage_estimated: bool,
        cost_usd: Option<f64>,
    },
}

/// Turn events travel as newline-delimited JSON; a line is only parsed once it is whole, so
/// network chunking (which may split a multi-byte character) never matters.
pub mod ndjson {
    use super::TurnEnvelope;

    pub fn encode(envelope: &TurnEnvelope) -> Vec<u8> {
        // Serialising these plain structs cannot fail.
        let mut line = serde_json::to_vec(envelope).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// Accumulates bytes and yields each complete line's envelope.
    #[derive(Default)]
    pub struct Decoder {
        buffer: Vec<u8>,
    }

    impl Decoder {
        pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<TurnEnvelope, serde_json::Error>> {
            self.buffer.extend_from_slice(bytes);
            let mut out = Vec::new();
            while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.len() > 1 {
                    out.push(serde_json::from_slice(&line[..line.len() - 1]));
                }
            }
            out
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::model::TurnEvent;

        #[test]
        fn lines_split_anywhere_decode_whole() {
            let events: Vec<TurnEnvelope> = ["日本語 🌍", "é", " plain"]
                .iter()
                .enumerate()
                .map(|(i, t)| TurnEnvelope {
                    seq: i as u32 + 1,
                    event: TurnEvent::Delta { text: (*t).into() },
                })
                .collect();
            let bytes: Vec<u8> = events.iter().flat_map(encode).collect();
            for size in 1..=5 {
                let mut decoder = Decoder::default();
                let decoded: Vec<TurnEnvelope> = bytes
                    .chunks(size)
                    .flat_map(|c| decoder.push(c))
                    .collect::<Result<_, _>>()
                    .expect("valid lines");
                assert_eq!(decoded, events, "chunk size {size}");
            }
        }
    }
}
