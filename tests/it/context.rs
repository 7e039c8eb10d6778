//! Conversations never brick: a prompt always fits its model's window, the page says what was
//! left out, and a message too long for the window fails clearly without breaking what follows.

use fake_provider::FakeConfig;
use rill::model::MessageStatus;

use crate::sql::sql;
use crate::support::*;

#[tokio::test]
async fn a_conversation_longer_than_the_window_keeps_answering_and_says_what_was_left_out() {
    // The fake's model list reports a 1,000-token window (vLLM's `max_model_len`).
    let app = TestApp::start(FakeConfig {
        tokens: 20,
        context_tokens: Some(1_000),
        ..FakeConfig::default()
    })
    .await;
    let question = |i: usize| format!("Question {i}: {}", "tell me more about rivers. ".repeat(8));
    let mut conversation = None;
    let mut left_out = Vec::new();
    for i in 0..12 {
        let events = app.turn(conversation, &question(i)).await;
        conversation = Some(conversation_of(&events));
        let outcome = finished(&events);
        assert_eq!(
            outcome.status,
            MessageStatus::Complete,
            "turn {i}: {outcome:?}"
        );
        left_out.push(outcome.left_out);
    }
    assert_eq!(left_out[0], 0);
    assert!(
        left_out[11] > 0,
        "the oldest messages were left out: {left_out:?}"
    );
    // What was sent fits: the estimate is deliberately high, so the real prompt is smaller still.
    let last = app.fake.requests().pop().expect("a request");
    let sent = last["messages"].as_array().expect("messages");
    assert_eq!(sent.first().map(|m| m["role"].clone()), Some("user".into()));
    assert_eq!(
        sent.last().map(|m| m["content"].clone()),
        Some(question(11).trim().into())
    );
    let bytes: usize = sent
        .iter()
        .filter_map(|m| m["content"].as_str())
        .map(str::len)
        .sum();
    assert!(bytes / 3 < 1_000, "about {} tokens sent", bytes / 3);
    assert!(last["max_tokens"].as_u64().is_some_and(|m| m <= 500));
    // The note is stored with the reply, so a reload shows it.
    let stored: (i64,) = sql(
        "SELECT left_out FROM messages WHERE role = 'assistant' ORDER BY position DESC LIMIT 1",
    )
    .fetch_one(&app.state.db)
    .await;
    assert_eq!(stored.0, i64::from(left_out[11]));
}

#[tokio::test]
async fn a_message_too_long_for_the_window_fails_clearly_and_the_next_one_works() {
    let app = TestApp::start(FakeConfig {
        tokens: 5,
        context_tokens: Some(1_000),
        ..FakeConfig::default()
    })
    .await;
    let first = app.turn(None, &"a long paste ".repeat(400)).await;
    let conversation = conversation_of(&first);
    let outcome = finished(&first);
    assert_eq!(outcome.status, MessageStatus::Failed);
    let error = outcome.error.clone().unwrap_or_default();
    assert!(error.contains("too long for fake/fake-model"), "{error}");
    assert!(app.fake.requests().is_empty(), "nothing was sent");
    let next = app.turn(Some(conversation), "A short question").await;
    let outcome = finished(&next);
    assert_eq!(outcome.status, MessageStatus::Complete);
    assert_eq!(outcome.left_out, 1, "the long paste was left out");
}

#[tokio::test]
async fn a_long_conversation_reads_back_what_fits_and_counts_every_earlier_message_left_out() {
    // Forty turns of about 100 tokens each against a 1,000-token window: a send reads the newest
    // turns only, and the messages it never read count as left out by the same rule as those it
    // read and did not send (a failed reply is never sent, so it is not counted).
    let config = FakeConfig {
        tokens: 20,
        context_tokens: Some(1_000),
        ..FakeConfig::default()
    };
    let app = TestApp::start(config.clone()).await;
    let mut conversation = None;
    let mut last = None;
    for i in 0..40 {
        app.fake.set_config(FakeConfig {
            fail_status: (i == 3).then_some(400),
            ..config.clone()
        });
        let events = app
            .turn(
                conversation,
                &format!("Question {i}: tell me more about rivers, please."),
            )
            .await;
        conversation = Some(conversation_of(&events));
        let expected = if i == 3 {
            MessageStatus::Failed
        } else {
            MessageStatus::Complete
        };
        assert_eq!(finished(&events).status, expected, "turn {i}");
        last = Some(finished(&events).clone());
    }
    let last = last.expect("forty turns");
    let request = app.fake.requests().pop().expect("a request");
    let sent = request["messages"].as_array().expect("messages").len();
    assert!(sent < 20, "only the newest turns fit: {sent} sent");
    // 40 questions and the 38 replies before the last that did not fail.
    assert_eq!(last.left_out as usize + sent, 40 + 38);
}
