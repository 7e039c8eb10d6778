//! Real generation with the default local model (fetched by `scripts/fetch-model.sh`), one thread,
//! fixed seeds. These assert structure (streaming, endings, UTF-8, cancellation), not facts.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use llm::local::{LocalModel, LocalModelConfig, LocalProvider, SamplingConfig};
use llm::{ChatMessage, ChatRequest, FinishReason, Provider, ProviderEvent, Role};

fn model_path() -> PathBuf {
    std::env::var_os("RILL_LOCAL_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        })
}

/// One loaded model shared by the tests (loading takes a second and 100 MB).
fn model() -> MutexGuard<'static, LocalModel> {
    static MODEL: OnceLock<Mutex<LocalModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = model_path();
            let model = LocalModel::load(&path).unwrap_or_else(|e| {
                panic!(
                    "{e} (run `bash scripts/fetch-model.sh` first; looked for {})",
                    path.display()
                )
            });
            Mutex::new(model)
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn request(text: &str, max_output_tokens: Option<u32>) -> ChatRequest {
    ChatRequest {
        model: "smollm2".into(),
        system: None,
        messages: vec![ChatMessage {
            role: Role::User,
            content: text.into(),
        }],
        max_output_tokens,
    }
}

fn seeded() -> SamplingConfig {
    SamplingConfig {
        seed: Some(42),
        ..SamplingConfig::default()
    }
}

#[test]
fn tokenizer_ids_match_an_independent_implementation() {
    // Recorded by tests/data/reference_tokenizer.py, a plain-Python byte-level BPE (see its header).
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("data/tokenizer_reference.json"))
            .expect("reference file");
    let model = model();
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let expected: Vec<u32> = serde_json::from_value(case["ids"].clone()).expect("ids");
        assert_eq!(
            model.encode(text).expect("encode"),
            expected,
            "ids for {text:?}"
        );
        let decoded = model.tokenizer().decode(&expected, false).expect("decode");
        assert_eq!(decoded, text, "round trip of {text:?}");
    }
}

#[test]
fn a_reply_streams_as_valid_text_and_ends_at_end_of_turn_or_the_limit() {
    let mut model = model();
    let prompt = "Write one sentence about the sea. Use an emoji: 🌊";
    let mut events = Vec::new();
    model
        .generate(&request(prompt, Some(64)), 512, &seeded(), |e| {
            events.push(e);
            true
        })
        .expect("generation");

    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            ProviderEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        deltas.len() >= 2,
        "text arrives in several pieces: {deltas:?}"
    );
    let text: String = deltas.concat();
    assert!(!text.trim().is_empty());
    assert!(!text.contains('\u{FFFD}'), "no broken characters: {text:?}");
    assert!(
        !text.contains("<|im_end|>"),
        "the end-of-turn token is not text"
    );

    let finish = events.iter().find_map(|e| match e {
        ProviderEvent::Finished(f) => Some(f.clone()),
        _ => None,
    });
    let usage = events.iter().find_map(|e| match e {
        ProviderEvent::Usage(u) => Some(*u),
        _ => None,
    });
    let usage = usage.expect("usage is reported");
    let prompt_tokens = model
        .encode(&llm::local::chatml_prompt(&request(prompt, None)))
        .expect("encode")
        .len();
    assert_eq!(
        usage.input_tokens as usize, prompt_tokens,
        "input counts the whole ChatML prompt"
    );
    match finish.expect("a finish reason") {
        FinishReason::Stop => assert!(usage.output_tokens < 64),
        FinishReason::Length => assert_eq!(usage.output_tokens, 64),
        other => panic!("unexpected finish {other:?}"),
    }
}

#[test]
fn the_token_limit_ends_a_reply() {
    let mut model = model();
    let mut events = Vec::new();
    model
        .generate(
            &request("Count from one to one hundred in words.", Some(5)),
            512,
            &seeded(),
            |e| {
                events.push(e);
                true
            },
        )
        .expect("generation");
    assert!(
        events.contains(&ProviderEvent::Finished(FinishReason::Length)),
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, ProviderEvent::Usage(u) if u.output_tokens == 5)));
}

#[test]
fn the_same_seed_gives_the_same_reply() {
    let mut model = model();
    let mut run = || {
        let mut text = String::new();
        model
            .generate(&request("Name a colour.", Some(12)), 512, &seeded(), |e| {
                if let ProviderEvent::TextDelta(t) = e {
                    text.push_str(&t);
                }
                true
            })
            .expect("generation");
        text
    };
    assert_eq!(run(), run());
}

#[test]
fn a_paste_longer_than_the_context_is_trimmed_not_an_error() {
    let mut model = model();
    assert!(
        model.context_length() <= 4096,
        "candle's rotary tables stop at 4096"
    );
    // About 5,000 tokens, as in a 21,000-character paste. A large reply limit leaves little of
    // the prompt in the context, which keeps the prefill (and this test) short; before the cap
    // the file's 8192-token context let the prompt run past candle's 4096 positions.
    let paste = "The quick brown fox jumps over the lazy dog. ".repeat(470);
    assert!(paste.len() > 21_000);
    let mut text = String::new();
    model
        .generate(&request(&paste, Some(4000)), 512, &seeded(), |e| {
            if let ProviderEvent::TextDelta(t) = e {
                text.push_str(&t);
                return false;
            }
            true
        })
        .expect("a long prompt is trimmed to the context");
    assert!(!text.is_empty());
}

#[test]
fn a_partial_reply_is_continued() {
    let mut model = model();
    let mut continued = request("Name the capital of France in one sentence.", Some(6));
    continued.messages.push(ChatMessage {
        role: Role::Assistant,
        content: "The capital of France is".into(),
    });
    let prompt = llm::local::chatml_prompt(&continued);
    assert!(prompt.ends_with("<|im_start|>assistant\nThe capital of France is"));
    let mut text = String::new();
    let mut usage = None;
    model
        .generate(&continued, 512, &seeded(), |e| {
            match e {
                ProviderEvent::TextDelta(t) => text.push_str(&t),
                ProviderEvent::Usage(u) => usage = Some(u),
                _ => {}
            }
            true
        })
        .expect("generation");
    assert!(!text.trim().is_empty());
    assert_eq!(
        usage.map(|u| u.input_tokens as usize),
        Some(model.encode(&prompt).expect("encode").len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_stops_generation_and_frees_the_model_for_the_next_request() {
    let provider = LocalProvider::start(LocalModelConfig {
        path: model_path(),
        max_output_tokens: 400,
        sampling: seeded(),
    })
    .expect("model loads");
    assert!(provider.info.context_length <= 4096);
    let mut first = provider.stream_chat(request(
        "Tell me a very long story about a lighthouse.",
        Some(400),
    ));
    let mut deltas = 0;
    while deltas < 3 {
        match first.next().await {
            Some(Ok(ProviderEvent::TextDelta(_))) => deltas += 1,
            Some(Ok(_)) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
    // A second request meanwhile is queued behind the first, and says so.
    let mut second = provider.stream_chat(request("Say hi.", Some(8)));
    assert_eq!(
        second.next().await,
        Some(Ok(ProviderEvent::Queued { ahead: 1 }))
    );

    drop(first);
    // The generation thread notices at its next token and moves on to the queued request.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut second_text = false;
    while let Some(event) = tokio::time::timeout_at(deadline.into(), second.next())
        .await
        .expect("second reply in time")
    {
        if matches!(event, Ok(ProviderEvent::TextDelta(_))) {
            second_text = true;
        }
    }
    assert!(
        second_text,
        "the queued request ran after the first was dropped"
    );
    assert_eq!(provider.pending(), 0);
}
