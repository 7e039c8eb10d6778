//! Checkpoints of a running reply append what came since the last one (`reply_pieces`) and
//! rewrite the reply's row only now and then, so that the bytes a reply writes grow with its
//! length rather than with its length times its checkpoints (issue 27); what is saved, row and
//! pieces together, is what readers and a crash's recovery see.

use std::collections::BTreeSet;
use std::time::Duration;

use fake_provider::{expected_text, FakeConfig};
use rill::model::MessageStatus;
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

/// The reply's row length, and its saved length (row and pieces), in bytes.
async fn stored_lengths(app: &TestApp) -> Option<(i64, i64)> {
    sql("SELECT CAST(octet_length(content) AS BIGINT),
                CAST(octet_length(content)
                     + (SELECT COALESCE(SUM(octet_length(p.content)), 0)
                          FROM reply_pieces p WHERE p.message_id = messages.id) AS BIGINT)
           FROM messages WHERE role = 'assistant' AND status = 'streaming'")
    .fetch_optional(&app.state.db)
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_reply_appends_its_checkpoints_and_rewrites_its_row_only_as_it_doubles() {
    // About 3 s of text: a dozen checkpoints.
    let app = TestApp::start(FakeConfig {
        tokens: 300,
        token_delay_ms: 10,
        ..FakeConfig::default()
    })
    .await;
    let reader = EventReader::new(app.send(Uuid::new_v4(), None, "go on").await);
    let reading = tokio::spawn(reader.read_to_end());
    let mut rows = BTreeSet::new();
    let mut saved = BTreeSet::new();
    let watching = tokio::time::Instant::now();
    while !reading.is_finished() && watching.elapsed() < Duration::from_secs(30) {
        if let Some((row, all)) = stored_lengths(&app).await {
            rows.insert(row);
            saved.insert(all);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let events = reading.await.expect("the reader");
    assert_eq!(finished(&events).status, MessageStatus::Complete);
    let text = expected_text(300);
    // Saved at many checkpoints...
    assert!(saved.len() >= 6, "saved lengths seen: {saved:?}");
    // ...while the row was written whole about once per doubling of the text.
    let doublings = (text.len() as f64).log2().ceil() as usize;
    assert!(
        rows.len() <= doublings,
        "the row was rewritten at {} lengths ({rows:?}) for {} bytes",
        rows.len(),
        text.len()
    );
    assert!(rows.len() < saved.len(), "rows {rows:?}, saved {saved:?}");
    // The end is written whole, and no piece outlives it.
    let conversation = conversation_of(&events);
    assert_eq!(
        last_reply(&app, conversation).await,
        ("complete".to_owned(), text)
    );
    assert_eq!(app.count("reply_pieces").await, 0);
}

#[tokio::test]
async fn a_streaming_reply_reads_as_its_row_then_its_pieces_and_a_crash_folds_them_in() {
    let app = TestApp::start(FakeConfig {
        tokens: 4,
        ..FakeConfig::default()
    })
    .await;
    let events = app.turn(None, "hello").await;
    let conversation = conversation_of(&events);
    // As a kill would leave it: the row written whole up to "Once ", two pieces after it.
    sql("UPDATE messages SET status = 'streaming', content = 'Once ' WHERE role = 'assistant'")
        .execute(&app.state.db)
        .await;
    for (content, thinking) in [("upon ", "hm"), ("a time", "m.")] {
        sql("INSERT INTO reply_pieces (message_id, content, thinking)
             SELECT id, $1, $2 FROM messages WHERE role = 'assistant'")
        .bind(content)
        .bind(thinking)
        .execute(&app.state.db)
        .await;
    }
    // What a page opening the conversation reads now.
    let view = app.stored(conversation).await;
    assert_eq!(view.messages[1].content, "Once upon a time");
    assert_eq!(view.messages[1].thinking, "hmm.");
    // The start-up recovery takes the pieces into the row.
    let interrupted: (String, String, String) = {
        sql("UPDATE messages SET status = 'streaming', replica = NULL WHERE role = 'assistant'")
            .execute(&app.state.db)
            .await;
        rill::server::turns::join(&app.state.db, &app.state.prices)
            .await
            .expect("recovery");
        sql("SELECT status, content, thinking FROM messages WHERE role = 'assistant'")
            .fetch_one(&app.state.db)
            .await
    };
    assert_eq!(
        interrupted,
        (
            "interrupted".to_owned(),
            "Once upon a time".to_owned(),
            "hmm.".to_owned()
        )
    );
    assert_eq!(app.count("reply_pieces").await, 0);
}
