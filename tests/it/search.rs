//! Search: ranking, words in any language, phrases and prefixes, people apart, the index kept
//! in step with every change (a message stored, a reply checkpointed, an edit, a rename, a
//! delete, its undo and its purge), queries a person should not be able to break, and opening a
//! conversation at a message found (its window and its branch).

use fake_provider::FakeConfig;
use rill::model::search::{SearchHit, MAX_SEARCH_CHARS};
use rill::model::{ConversationView, Role};
use rill::server::db::{self, Engine};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::sql::{execute_all, sql, Sql};
use crate::support::*;

async fn search(app: &TestApp, query: &str) -> Vec<SearchHit> {
    let response = app.post_json("search", json!({ "query": query })).await;
    assert_eq!(response.status(), 200, "search {query:?}");
    response.json().await.expect("hits")
}

/// The text of each hit: the title for a title, else the snippet.
fn found(hits: &[SearchHit]) -> Vec<String> {
    hits.iter()
        .map(|h| match &h.message {
            Some(m) => m.snippet.text.clone(),
            None => h.title.text.clone(),
        })
        .collect()
}

/// How many of the hits are messages (a conversation's title is its first question, so a word
/// of that question is found in both).
fn in_messages(hits: &[SearchHit]) -> usize {
    hits.iter().filter(|h| h.message.is_some()).count()
}

/// The marked words of each hit.
fn marked(hits: &[SearchHit]) -> Vec<Vec<String>> {
    hits.iter()
        .map(|h| {
            let marked = h.message.as_ref().map_or(&h.title, |m| &m.snippet);
            marked
                .pieces()
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(text, _)| text.to_owned())
                .collect()
        })
        .collect()
}

/// Replies are `words`, one token each (with the spaces between).
fn replying(app: &TestApp, words: &str) {
    app.fake.set_config(FakeConfig {
        script: Some(
            words
                .split_inclusive(' ')
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        ),
        token_delay_ms: 0,
        ..Default::default()
    });
}

async fn conversation_with(app: &TestApp, question: &str, answer: &str) -> Uuid {
    replying(app, answer);
    conversation_of(&app.turn(None, question).await)
}

#[tokio::test]
async fn titles_come_first_then_messages_best_first_with_their_words_marked() {
    let app = TestApp::start(FakeConfig::default()).await;
    let titled = conversation_with(&app, "first question", "nothing here").await;
    assert_eq!(
        app.post_json(
            "rename_conversation",
            json!({"id": titled, "title": "Zebra notes"})
        )
        .await
        .status(),
        200
    );
    let filler = "and then some more words about other animals entirely ".repeat(6);
    let sparse = conversation_with(&app, "q sparse", &format!("{filler} one zebra {filler}")).await;
    let dense = conversation_with(&app, "q dense", "zebra stripes, zebra herds").await;

    let hits = search(&app, "zebra").await;
    let order: Vec<(Uuid, bool)> = hits
        .iter()
        .map(|h| (h.conversation_id, h.message.is_some()))
        .collect();
    assert_eq!(order, [(titled, false), (dense, true), (sparse, true)]);
    assert_eq!(marked(&hits)[0], ["Zebra"]);
    assert_eq!(marked(&hits)[1], ["zebra", "zebra"]);
    assert_eq!(hits[1].title.text, "q dense");
    assert_eq!(
        hits[1].message.as_ref().map(|m| m.role),
        Some(Role::Assistant)
    );
    // A snippet is a part of a long message around the match, not all of it.
    assert!(found(&hits)[2].contains("one zebra"), "{:?}", found(&hits));
    assert!(found(&hits)[2].chars().count() < filler.chars().count());
    // Questions are found too.
    let hits = search(&app, "sparse").await;
    assert_eq!(in_messages(&hits), 1);
    assert!(hits
        .iter()
        .any(|h| h.message.as_ref().map(|m| m.role) == Some(Role::User)));
}

#[tokio::test]
async fn words_in_any_language_prefixes_and_phrases() {
    let app = TestApp::start(FakeConfig::default()).await;
    let id = conversation_with(&app, "Écris-moi", "Un résumé très complet, 日本 ok").await;
    for query in [
        "resume",
        "RÉSUMÉ",
        "résu",
        "res",
        "tres complet",
        "\"très complet\"",
    ] {
        let hits = search(&app, query).await;
        assert_eq!(hits.len(), 1, "{query}");
        assert_eq!(hits[0].conversation_id, id);
    }
    assert_eq!(marked(&search(&app, "resume").await)[0], ["résumé"]);
    // The question, and the title made of it.
    assert_eq!(search(&app, "ecris").await.len(), 2);
    // A phrase is matched as written; every word must match.
    assert!(search(&app, "\"complet très\"").await.is_empty());
    assert!(search(&app, "résumé giraffe").await.is_empty());
    // Thinking is not searched, and neither is what was never written.
    assert!(search(&app, "nowhere").await.is_empty());
}

async fn find(person: &Person, query: &str) -> Vec<SearchHit> {
    let response = person.post("search", json!({ "query": query })).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("hits")
}

async fn open(person: &Person, conversation_id: Uuid, message_id: Uuid) -> reqwest::Response {
    person
        .post(
            "open_at",
            json!({"conversation_id": conversation_id, "message_id": message_id}),
        )
        .await
}

#[tokio::test]
async fn people_find_only_their_own_conversations() {
    let app = TestApp::with_accounts().await;
    app.add_user("alice", false).await;
    app.add_user("bob", false).await;
    let alice = app.signed_in("alice").await;
    let bob = app.signed_in("bob").await;
    replying(&app, "kumquat marmalade");
    let theirs = conversation_of(&alice.turn(None, "a kumquat recipe").await);
    replying(&app, "plain toast");
    bob.turn(None, "something else").await;

    assert_eq!(in_messages(&find(&alice, "kumquat").await), 2);
    assert!(find(&bob, "kumquat").await.is_empty());
    assert!(find(&bob, "recipe").await.is_empty());
    // Nor can one open another's message: it answers as one that does not exist.
    let hit = find(&alice, "marmalade").await.remove(0);
    assert_eq!(hit.conversation_id, theirs);
    let message_id = hit.message.expect("a message").id;
    let foreign = open(&bob, theirs, message_id).await;
    let missing = open(&bob, theirs, Uuid::new_v4()).await;
    assert_eq!(
        (foreign.status().as_u16(), missing.status().as_u16()),
        (404, 404)
    );
    assert_eq!(
        foreign.text().await.expect("body"),
        missing.text().await.expect("body")
    );
    assert_eq!(open(&alice, theirs, message_id).await.status(), 200);
    // Signed out, nothing.
    assert_eq!(
        app.visitor()
            .post("search", json!({"query": "kumquat"}))
            .await
            .status(),
        401
    );
}

/// How many rows the message index holds for `word` (whoever owns them): on SQLite its FTS5
/// table, on Postgres the messages whose search column (the index's entries) has it.
async fn indexed(app: &TestApp, word: &str) -> i64 {
    match app.state.db.engine() {
        Engine::Sqlite => sql("SELECT COUNT(*) FROM message_search WHERE message_search MATCH $1"),
        Engine::Postgres => sql(
            "SELECT COUNT(*) FROM messages WHERE content_search @@ to_tsquery('rill_search', $1)",
        ),
    }
    .bind(word)
    .scalar(&app.state.db)
    .await
}

/// The same of the title index.
async fn titles_indexed(app: &TestApp, word: &str) -> i64 {
    match app.state.db.engine() {
        Engine::Sqlite => sql("SELECT COUNT(*) FROM title_search WHERE title_search MATCH $1"),
        Engine::Postgres => sql("SELECT COUNT(*) FROM conversations
              WHERE title_search @@ to_tsquery('rill_search', $1)"),
    }
    .bind(word)
    .scalar(&app.state.db)
    .await
}

/// FTS5's own check that an external content index matches its rows (SQLite only: Postgres's
/// search columns are computed from their rows by Postgres itself, so they cannot drift).
async fn check_sqlite_indexes(db: &db::Db) {
    if db.engine() != Engine::Sqlite {
        return;
    }
    for table in ["message_search", "title_search"] {
        sql(format!(
            "INSERT INTO {table} ({table}, rank) VALUES ('integrity-check', 1)"
        ))
        .execute(db)
        .await;
    }
}

#[tokio::test]
async fn the_index_keeps_in_step_with_every_change() {
    let app = TestApp::start(FakeConfig::default()).await;
    // Stored: found at once.
    let id = conversation_with(&app, "about okapis", "okapi facts").await;
    assert_eq!(in_messages(&search(&app, "okapi").await), 2);

    // Edited (a new version of the question): the new text is found, and the old one still is
    // (it is a version one can go back to).
    let question = app.stored(id).await.messages[0].turn_id;
    replying(&app, "tapir facts");
    let edited = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": id,
                   "text": "about tapirs", "model": null, "alternative_to": question}),
        )
        .await;
    assert_eq!(edited.status(), 200);
    EventReader::new(edited).read_to_end().await;
    assert_eq!(in_messages(&search(&app, "tapir").await), 2);
    assert_eq!(in_messages(&search(&app, "okapi").await), 2);

    // Renamed: the new title is found, the old one no longer.
    app.post_json("rename_conversation", json!({"id": id, "title": "Quagga"}))
        .await;
    assert_eq!(found(&search(&app, "quagga").await), ["Quagga"]);
    assert!(search(&app, "about")
        .await
        .iter()
        .all(|h| h.message.is_some()));

    // Deleted: never found; restored: found again.
    let delete = json!({ "id": id });
    assert_eq!(
        app.post_json("delete_conversation", delete.clone())
            .await
            .status(),
        200
    );
    for word in ["okapi", "tapir", "quagga"] {
        assert!(search(&app, word).await.is_empty(), "{word}");
    }
    assert_eq!(
        app.post_json("restore_conversation", delete.clone())
            .await
            .status(),
        200
    );
    assert_eq!(in_messages(&search(&app, "tapir").await), 2);

    // Purged: gone from the index itself, not only filtered out.
    app.post_json("delete_conversation", delete).await;
    db::purge_deleted(&app.state.db, db::now_ms() + 1)
        .await
        .expect("purge");
    for word in ["okapi", "tapir"] {
        assert_eq!(indexed(&app, word).await, 0, "{word}");
    }
    assert_eq!(titles_indexed(&app, "quagga").await, 0);
    // The index agrees with the rows.
    check_sqlite_indexes(&app.state.db).await;
}

#[tokio::test]
async fn a_reply_being_written_is_found_once_checkpointed() {
    let app = TestApp::start(FakeConfig::default()).await;
    app.fake.set_config(FakeConfig {
        script: Some(vec!["the ".into(), "axolotl ".into(), "waits".into()]),
        token_delay_ms: 0,
        // Goes quiet after two tokens, the reply still open.
        stall_after: Some(2),
        ..Default::default()
    });
    let turn_id = Uuid::new_v4();
    let mut reader = EventReader::new(app.send(turn_id, None, "tell me").await);
    reader.started().await;
    eventually("the streaming reply is found", || async {
        search(&app, "axolotl").await.iter().any(|h| {
            h.message
                .as_ref()
                .is_some_and(|m| m.role == Role::Assistant)
        })
    })
    .await;
    assert_eq!(app.stop(turn_id).await.status(), 200);
    reader.read_to_end().await;
    assert_eq!(search(&app, "axolotl").await.len(), 1);
}

#[tokio::test]
async fn whatever_a_person_types_is_searched_or_refused_in_words() {
    let app = TestApp::start(FakeConfig::default()).await;
    conversation_with(&app, "a question", "an answer with AND OR NOT words").await;
    for typed in [
        "",
        "   ",
        "\"",
        "\"\"",
        "\"unclosed phrase",
        "*",
        "an*",
        "a AND",
        "OR OR OR",
        "NOT answer",
        "NEAR(answer with)",
        "answer:with",
        "{answer}",
        "^answer",
        "-answer",
        "+answer",
        "col:answer",
        "'; DROP TABLE messages; --",
        "\u{0}\u{2}\u{3}",
        "🙂",
        "a\"b\"c\"",
        "(((",
        "answer)",
    ] {
        let response = app.post_json("search", json!({ "query": typed })).await;
        assert_eq!(response.status(), 200, "{typed:?}");
        let _: Vec<SearchHit> = response.json().await.expect("hits");
    }
    // Operators are only words: this finds the answer holding them.
    assert_eq!(search(&app, "NOT answer").await.len(), 1);

    let too_long = app
        .post_json(
            "search",
            json!({ "query": "x".repeat(MAX_SEARCH_CHARS + 1) }),
        )
        .await;
    assert_eq!(too_long.status(), 400);
    let body: Value = too_long.json().await.expect("error body");
    assert!(
        body.to_string().contains("at most 200 characters"),
        "{body}"
    );
    let too_many = app
        .post_json("search", json!({ "query": "w ".repeat(40) }))
        .await;
    assert_eq!(too_many.status(), 400);
    assert_eq!(
        app.post_json("search", json!({ "query": 5 }))
            .await
            .status(),
        400
    );
    assert_eq!(app.count("messages").await, 2);
}

#[tokio::test]
async fn opening_a_result_reaches_back_to_its_message_on_its_branch() {
    let app = TestApp::start(FakeConfig::default()).await;
    // Longer than the window the page opens with.
    let id = conversation_with(&app, "the capybara question", "first answer").await;
    replying(&app, "later");
    let turns = usize::try_from(db::WINDOW_MESSAGES).expect("small") / 2 + 5;
    for i in 0..turns {
        app.turn(Some(id), &format!("turn {i}")).await;
    }
    assert!(app.stored(id).await.older_before.is_some());
    let first = search(&app, "capybara")
        .await
        .into_iter()
        .find_map(|h| h.message)
        .expect("the question")
        .id;
    let open = |message_id: Uuid| {
        app.post_json(
            "open_at",
            json!({"conversation_id": id, "message_id": message_id}),
        )
    };
    let view: ConversationView = open(first).await.json().await.expect("view");
    assert_eq!(view.messages.first().map(|m| m.id), Some(first));
    assert_eq!(view.older_before, None);
    assert_eq!(view.messages.len(), 2 * (turns + 1));

    // On another branch: an edit of the last question leaves the old one on another version;
    // opening the old one shows its version again, as choosing it would.
    let view = app.stored(id).await;
    let last_question = view.messages[view.messages.len() - 2].turn_id;
    replying(&app, "other");
    let edited = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": id,
                   "text": "a different ending", "model": null, "alternative_to": last_question}),
        )
        .await;
    EventReader::new(edited).read_to_end().await;
    let old = search(&app, &format!("\"turn {}\"", turns - 1))
        .await
        .remove(0)
        .message
        .expect("a message")
        .id;
    let response = open(old).await;
    assert_eq!(response.status(), 200);
    let view: ConversationView = response.json().await.expect("view");
    assert!(view.messages.iter().any(|m| m.id == old));
    assert_eq!(view.messages[view.messages.len() - 2].id, old);
    // It stays chosen, and a message that is not there is not found.
    assert!(app.stored(id).await.messages.iter().any(|m| m.id == old));
    assert_eq!(open(Uuid::new_v4()).await.status(), 404);
}

async fn listed(app: &TestApp, endpoint: &str) -> Vec<Uuid> {
    let response = app.post_json(endpoint, json!({})).await;
    assert_eq!(response.status(), 200, "{endpoint}");
    let list: Vec<rill::model::ConversationSummary> = response.json().await.expect("list");
    list.into_iter().map(|c| c.id).collect()
}

#[tokio::test]
async fn pinned_conversations_are_listed_apart_until_unpinned() {
    let app = TestApp::start(FakeConfig::default()).await;
    let first = conversation_with(&app, "first", "one").await;
    let second = conversation_with(&app, "second", "two").await;
    let pin = |id: Uuid, pinned: bool| {
        app.post_json("pin_conversation", json!({"id": id, "pinned": pinned}))
    };
    assert_eq!(pin(first, true).await.status(), 200);
    assert_eq!(listed(&app, "list_pinned").await, [first]);
    assert_eq!(listed(&app, "list_conversations").await, [second]);
    // Most recently pinned first; pinning changes nothing else of the conversation.
    let changed = app.stored(second).await;
    assert_eq!(pin(second, true).await.status(), 200);
    assert_eq!(listed(&app, "list_pinned").await, [second, first]);
    assert!(listed(&app, "list_conversations").await.is_empty());
    assert_eq!(app.stored(second).await, changed);
    // Unpinned, it is back in its place by last activity.
    assert_eq!(pin(first, false).await.status(), 200);
    assert_eq!(listed(&app, "list_pinned").await, [second]);
    assert_eq!(listed(&app, "list_conversations").await, [first]);
    // Deleted: listed nowhere; nor can one pin what does not exist.
    app.post_json("delete_conversation", json!({ "id": second }))
        .await;
    assert!(listed(&app, "list_pinned").await.is_empty());
    assert_eq!(pin(second, true).await.status(), 404);
    assert_eq!(pin(Uuid::new_v4(), true).await.status(), 404);
}

/// Stores a conversation of `owner`'s straight into the database (the search triggers index it
/// as they index what the server stores): its title and one message per text, oldest first.
async fn store(db: &db::Db, owner: &str, title: &str, texts: &[&str]) -> Uuid {
    let (id, rows) = conversation_rows(owner, title, texts);
    execute_all(db, rows).await;
    id
}

/// The statements that store such a conversation, and its id.
fn conversation_rows(owner: &str, title: &str, texts: &[&str]) -> (Uuid, Vec<Sql>) {
    let id = Uuid::new_v4();
    let mut rows = vec![sql(
        "INSERT INTO conversations (id, owner, title, model, created_at, updated_at)
         VALUES ($1, $2, $3, 'fake/fake-model', 1, 1)",
    )
    .bind(id)
    .bind(owner)
    .bind(title)];
    for (i, text) in texts.iter().enumerate() {
        let position = i64::try_from(i).expect("small") + 1;
        rows.push(
            sql(
                "INSERT INTO messages (id, conversation_id, turn_id, role, content, status,
                     position, created_at, updated_at)
                 VALUES ($1, $2, $3, 'user', $4, 'complete', $5, 1, 1)",
            )
            .bind(Uuid::new_v4())
            .bind(id)
            .bind(Uuid::new_v4())
            .bind(*text)
            .bind(position),
        );
    }
    (id, rows)
}

async fn search_as(db: &db::Db, owner: &str, typed: &str) -> Vec<SearchHit> {
    rill::server::search::search(db, &db::Owner(owner.into()), typed)
        .await
        .expect("search")
}

#[tokio::test]
async fn another_persons_many_newer_matches_neither_crowd_out_nor_show() {
    let app = TestApp::start(FakeConfig::default()).await;
    let db = &app.state.db;
    let mine = store(db, "ana", "an old note", &["a zebra and a kiwi"]).await;
    // More than a search ranks, all newer than mine, in a title and a message each.
    let bens = (0..2_100)
        .flat_map(|i| conversation_rows("ben", &format!("zebra {i}"), &["zebra herds"]).1)
        .collect();
    execute_all(db, bens).await;
    let hits = search_as(db, "ana", "zebra").await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].conversation_id, mine);
    assert_eq!(marked(&hits), [["zebra"]]);
    // Ben's are his: titles first, then messages, as many as a search shows.
    let hits = search_as(db, "ben", "zebra").await;
    assert_eq!(hits.len(), rill::model::search::SEARCH_RESULTS);
    assert!(hits.iter().all(|h| h.conversation_id != mine));
    assert!(search_as(db, "ben", "kiwi").await.is_empty());
    // Someone who never stored anything finds nothing.
    assert!(search_as(db, "cleo", "zebra").await.is_empty());
}

#[tokio::test]
async fn every_result_shown_has_its_snippet_marked() {
    let app = TestApp::start(FakeConfig::default()).await;
    // Words the index has no prefix table for (four letters on), in more conversations than are
    // shown, each with more matching messages than one conversation shows.
    for i in 0..30 {
        store(
            &app.state.db,
            "ana",
            &format!("notes {i}"),
            &[
                &format!("the pangolins of {i}"),
                "nothing here",
                &format!("{i} pangolin scales"),
                "pangolin again",
            ],
        )
        .await;
    }
    let hits = search_as(&app.state.db, "ana", "pangol").await;
    assert_eq!(hits.len(), rill::model::search::SEARCH_RESULTS);
    for hit in &hits {
        let snippet = &hit.message.as_ref().expect("a message").snippet;
        let words: Vec<&str> = snippet
            .pieces()
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(text, _)| text)
            .collect();
        assert!(
            words == ["pangolins"] || words == ["pangolin"],
            "{snippet:?}"
        );
    }
    // At most two of one conversation.
    let mut per_conversation = std::collections::HashMap::<Uuid, usize>::new();
    for hit in &hits {
        *per_conversation.entry(hit.conversation_id).or_default() += 1;
    }
    assert!(per_conversation.values().all(|&n| n <= 2));
}

#[tokio::test]
async fn what_was_stored_before_the_per_owner_index_is_found_after_it() {
    let dir = private_dir();
    let path = dir.path().join("rill.db");
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .expect("database");
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 20261207000100)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.expect("earlier migrations");
    // Stored by SQLite's migrations of then: this test is about SQLite's index alone.
    let mut ana = None;
    for (owner, title, texts) in [
        ("ana", "Walrus facts", &["tusks", "a walrus naps"][..]),
        ("ben", "other things", &["walrus too"][..]),
    ] {
        let (id, rows) = conversation_rows(owner, title, texts);
        for row in rows {
            row.execute_on_sqlite(&pool).await;
        }
        ana = ana.or(Some(id));
    }
    let ana = ana.expect("ana's");
    pool.close().await;

    let db = db::connect(&rill::server::config::Database::Sqlite(path.clone()))
        .await
        .expect("migrated");
    let hits = search_as(&db, "ana", "walrus").await;
    assert_eq!(found(&hits), ["Walrus facts", "a walrus naps"]);
    assert!(hits.iter().all(|h| h.conversation_id == ana));
    assert_eq!(search_as(&db, "ben", "walrus").await.len(), 1);
    // Stored after it, found too, and the indexes agree with their rows.
    store(&db, "ana", "later", &["walrus again"]).await;
    store(&db, "dora", "new person", &["walrus at last"]).await;
    assert_eq!(search_as(&db, "ana", "walrus").await.len(), 3);
    assert_eq!(search_as(&db, "dora", "walrus").await.len(), 1);
    check_sqlite_indexes(&db).await;
}
