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

#[tokio::test]
async fn one_tick_appends_every_running_replys_piece_to_that_reply_and_skips_the_rest() {
    use rill::server::db::{save_checkpoints, Checkpoint, Owner, ReplyRef, ReplyText};
    let app = TestApp::start(FakeConfig {
        tokens: 4,
        ..FakeConfig::default()
    })
    .await;
    for question in ["one", "two", "three"] {
        app.turn(None, question).await;
    }
    // Three replies as a tick finds them: two still streaming run 1, one already ended.
    let replies: Vec<(String, String, String, String)> =
        sql("SELECT messages.id, c.owner, c.title, c.id FROM messages
           JOIN conversations c ON c.id = messages.conversation_id
          WHERE role = 'assistant' ORDER BY c.title")
        .fetch_all(&app.state.db)
        .await;
    sql("UPDATE messages SET status = 'streaming', content = 'Once '
          WHERE role = 'assistant' AND conversation_id IN
                (SELECT id FROM conversations WHERE title IN ('one', 'two'))")
    .execute(&app.state.db)
    .await;
    let ids = |title: &str| -> (Uuid, Uuid) {
        let (id, _, _, conversation) = replies.iter().find(|r| r.2 == title).expect(title);
        (
            id.parse().expect("a uuid"),
            conversation.parse().expect("a uuid"),
        )
    };
    let owner = Owner(replies[0].1.clone());
    let piece = |title: &str, owner: &Owner, run: u32, text: &str| Checkpoint {
        reply: ReplyRef {
            owner: owner.clone(),
            message_id: ids(title).0,
            run,
        },
        text: ReplyText {
            content: text.to_owned(),
            thinking: format!("({text})"),
        },
        whole: false,
    };
    let stranger = Owner("someone else".to_owned());
    save_checkpoints(
        &app.state.db,
        &[
            piece("one", &owner, 1, "upon"),
            piece("two", &owner, 1, "a time"),
            // Ended: its text is already whole in its row.
            piece("three", &owner, 1, "late"),
            // Not this owner's, or a run that is not the one streaming.
            piece("one", &stranger, 1, "theirs"),
            piece("two", &owner, 2, "next run"),
        ],
    )
    .await
    .expect("saved");
    let pieces: Vec<(String, String, String)> =
        sql("SELECT c.title, p.content, p.thinking FROM reply_pieces p
           JOIN messages ON messages.id = p.message_id
           JOIN conversations c ON c.id = messages.conversation_id
          ORDER BY c.title")
        .fetch_all(&app.state.db)
        .await;
    assert_eq!(
        pieces,
        vec![
            ("one".to_owned(), "upon".to_owned(), "(upon)".to_owned()),
            ("two".to_owned(), "a time".to_owned(), "(a time)".to_owned()),
        ]
    );
    // What a page reads of each: its row, then its piece; the ended one as it was.
    let view = app.stored(ids("one").1).await;
    assert_eq!(view.messages[1].content, "Once upon");
    assert_eq!(view.messages[1].thinking, "(upon)");
    let view = app.stored(ids("three").1).await;
    assert_eq!(view.messages[1].content, expected_text(4));
}

#[tokio::test]
async fn a_tick_with_more_replies_than_one_statement_holds_saves_each_to_its_own() {
    use rill::server::db::{save_checkpoints, Checkpoint, Owner, ReplyRef, ReplyText};
    let app = TestApp::start(FakeConfig {
        tokens: 2,
        ..FakeConfig::default()
    })
    .await;
    // More than two statements' worth (32 pieces each), the last one partial.
    const REPLIES: usize = 70;
    for i in 0..REPLIES {
        app.turn(None, &format!("question {i}")).await;
    }
    sql("UPDATE messages SET status = 'streaming', content = '' WHERE role = 'assistant'")
        .execute(&app.state.db)
        .await;
    let replies: Vec<(String, String, String)> =
        sql("SELECT messages.id, c.owner, c.title FROM messages
           JOIN conversations c ON c.id = messages.conversation_id
          WHERE role = 'assistant'")
        .fetch_all(&app.state.db)
        .await;
    assert_eq!(replies.len(), REPLIES);
    let checkpoints: Vec<Checkpoint> = replies
        .iter()
        .map(|(id, owner, title)| Checkpoint {
            reply: ReplyRef {
                owner: Owner(owner.clone()),
                message_id: id.parse().expect("a uuid"),
                run: 1,
            },
            text: ReplyText {
                content: format!("answer to {title}"),
                thinking: String::new(),
            },
            whole: false,
        })
        .collect();
    save_checkpoints(&app.state.db, &checkpoints)
        .await
        .expect("saved");
    let pieces: Vec<(String, String)> = sql("SELECT c.title, p.content FROM reply_pieces p
           JOIN messages ON messages.id = p.message_id
           JOIN conversations c ON c.id = messages.conversation_id")
    .fetch_all(&app.state.db)
    .await;
    assert_eq!(pieces.len(), REPLIES);
    for (title, content) in pieces {
        assert_eq!(content, format!("answer to {title}"));
    }
}
