//! Attachments leaving their conversation (issue 26): an export's archive carries each file
//! beside the conversations, an import brings them back (typed by their bytes again, owned by
//! the importer, within the importer's limits) so the provider is sent them again, and hostile
//! archives are refused in words with nothing lost.

use fake_provider::FakeConfig;
use rill::model::attachments::{AttachmentKind, AttachmentView};
use rill::model::transfer::ImportLine;
use rill::model::{ConversationView, MessageStatus, Role, TurnEnvelope, TurnEvent};
use rill::server::config::LimitSettings;
use rill::server::export_format::Conversation;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::attachments::{base64, error_text, fixture, png, upload_with};
use crate::sql::sql;
use crate::support::*;
use crate::transfer::{unzip, zipped};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn upload(person: &Person, name: &str, bytes: &[u8]) -> AttachmentView {
    let response = upload_with(&person.http, &person.base_url, name, bytes).await;
    assert_eq!(response.status(), 200, "{name} uploads");
    response.json().await.expect("an attachment")
}

async fn bytes_of(person: &Person, path: &str) -> (u16, Vec<u8>) {
    let response = person.get(path).await;
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("a body").to_vec())
}

/// Posts `bytes` to `/import` and reads how it ended: imported, skipped, reasons, error.
async fn import(person: &Person, bytes: Vec<u8>) -> (u32, u32, Vec<String>, Option<String>) {
    let response = person
        .http
        .post(format!("{}/import", person.base_url))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("request reaches the app");
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("lines");
    let last: ImportLine =
        serde_json::from_str(body.lines().last().expect("a line")).expect("an import line");
    match last {
        ImportLine::Done(s) => (s.imported, s.skipped, s.reasons, None),
        ImportLine::Failed { error, summary } => (
            summary.imported,
            summary.skipped,
            summary.reasons,
            Some(error),
        ),
        other => panic!("an import ends with its summary, not {other:?}"),
    }
}

async fn conversation(person: &Person, id: Uuid) -> ConversationView {
    let response = person.post("get_conversation", json!({"id": id})).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("a conversation")
}

/// A conversation in Rill's export format, one turn per entry of `turns` (each the files its
/// question carries: name and SHA-256).
fn rill_conversation(id: &str, turns: &[Vec<(&str, String)>]) -> Value {
    let turns: Vec<Value> = turns
        .iter()
        .enumerate()
        .map(|(n, files)| {
            let files: Vec<Value> = files
                .iter()
                .map(|(name, sha)| json!({"name": name, "sha256": sha, "size": 1, "mime": ""}))
                .collect();
            json!({"turn_id": format!("t{n}"),
                   "parent_turn_id": (n > 0).then(|| format!("t{}", n - 1)),
                   "question": {"text": format!("question {n}"), "created_at": 1, "files": files},
                   "reply": {"text": "answer", "status": "complete", "created_at": 2,
                             "updated_at": 2}})
        })
        .collect();
    json!({"format": "rill.conversation", "version": 2, "id": id, "title": id,
           "model": "fake/fake-model", "created_at": 1, "updated_at": 2, "turns": turns})
}

fn lines(conversations: &[Value]) -> Vec<u8> {
    conversations
        .iter()
        .map(|c| serde_json::to_string(c).expect("json") + "\n")
        .collect::<String>()
        .into_bytes()
}

#[tokio::test]
async fn an_archive_carries_its_files_and_an_import_elsewhere_sends_them_to_the_provider_again() {
    let app = TestApp::with(Setup {
        fake: FakeConfig {
            tokens: 300,
            token_delay_ms: 5,
            ..FakeConfig::default()
        },
        access: accounts_mode(),
        ..Setup::default()
    })
    .await;
    app.add_user("ana", false).await;
    let ben_id = app.add_user("ben", false).await;
    let ana = app.signed_in("ana").await;
    let ben = app.signed_in("ben").await;
    let shot = upload(&ana, "shot.png", &png(40, 30)).await;
    let report = upload(&ana, "report.pdf", &fixture("report.pdf")).await;
    let notes = upload(&ana, "notes.md", b"# Plan\nShip it.").await;

    // Ana asks with the three files; the reply is stopped part way, to be continued later.
    let q1 = Uuid::new_v4();
    let sent = ana
        .post(
            "send_message",
            json!({"turn_id": q1, "conversation_id": null, "text": "Look", "model": null,
                   "attachments": [shot.id, report.id, notes.id]}),
        )
        .await;
    assert_eq!(sent.status(), 200);
    let mut reader = EventReader::new(sent);
    let mut events: Vec<TurnEnvelope> = Vec::new();
    while !events
        .iter()
        .any(|e| matches!(e.event, TurnEvent::Delta { .. }))
    {
        events.push(reader.next().await.expect("streaming"));
    }
    let stopped = ana.post("stop_turn", json!({"turn_id": q1})).await;
    assert_eq!(stopped.status(), 200);
    events.extend(reader.read_to_end().await);
    let conversation_id = conversation_of(&events);

    // One conversation's archive: its line, then each file once, as it was stored.
    let (status, archive) = bytes_of(&ana, &format!("/export/{conversation_id}/zip")).await;
    assert_eq!(status, 200);
    let files = unzip(&archive);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected = vec!["conversations.jsonl".to_owned()];
    for file in [&shot, &report, &notes] {
        let (status, stored) = bytes_of(&ana, &format!("/attachments/{}", file.id)).await;
        assert_eq!(status, 200);
        let entry = format!("files/{}", sha256(&stored));
        let held = files
            .iter()
            .find(|(n, _)| *n == entry)
            .expect("the file is in");
        assert_eq!(held.1, stored, "{}", file.name);
        expected.push(entry);
    }
    assert_eq!(names, expected);
    let line: Conversation = serde_json::from_slice(&files[0].1).expect("a conversation");
    let carried: Vec<&str> = line.turns[0]
        .question
        .files
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(carried, ["shot.png", "report.pdf", "notes.md"]);
    // The Markdown export names each file with its size; the bytes are only in the archive.
    let (status, markdown) = bytes_of(&ana, &format!("/export/{conversation_id}/markdown")).await;
    assert_eq!(status, 200);
    let markdown = String::from_utf8(markdown).expect("utf-8");
    for name in [r"shot\.png", r"report\.pdf", r"notes\.md"] {
        assert!(
            markdown.contains(&format!("- Attached: {name} (")),
            "{name} in {markdown}"
        );
    }
    // The archive of everything holds the same files.
    let (_, everything) = bytes_of(&ana, "/export/all.zip").await;
    let all_names: Vec<String> = unzip(&everything).into_iter().map(|(n, _)| n).collect();
    assert_eq!(all_names, expected);

    // Ben imports it: the files become his, under new ids, typed again by their bytes.
    assert_eq!(import(&ben, archive.clone()).await, (1, 0, vec![], None));
    let (imported_id,): (String,) = sql("SELECT id FROM conversations WHERE owner = $1")
        .bind(&ben_id)
        .fetch_one(&app.state.db)
        .await;
    let imported_id = Uuid::parse_str(&imported_id).expect("an id");
    let view = conversation(&ben, imported_id).await;
    let question = view
        .messages
        .iter()
        .find(|m| m.role == Role::User)
        .expect("the question");
    let kinds: Vec<(&str, AttachmentKind, Option<&str>)> = question
        .attachments
        .iter()
        .map(|a| (a.name.as_str(), a.kind, a.note.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("shot.png", AttachmentKind::Image, None),
            ("report.pdf", AttachmentKind::File, None),
            ("notes.md", AttachmentKind::Text, None),
        ]
    );
    for (theirs, mine) in question.attachments.iter().zip([&shot, &report, &notes]) {
        assert_ne!(theirs.id, mine.id);
        let (status, bens) = bytes_of(&ben, &format!("/attachments/{}", theirs.id)).await;
        assert_eq!(status, 200);
        let (_, anas) = bytes_of(&ana, &format!("/attachments/{}", mine.id)).await;
        assert_eq!(bens, anas, "{}", mine.name);
        // Ana's own ids stay hers.
        assert_eq!(
            bytes_of(&ben, &format!("/attachments/{}", mine.id)).await.0,
            404
        );
    }

    // Ben continues the stopped reply: the provider is sent the question's files again.
    app.fake.set_config(FakeConfig {
        tokens: 6,
        ..FakeConfig::default()
    });
    app.fake.reset_log();
    let continued = ben
        .post(
            "continue_reply",
            json!({"turn_id": question.turn_id, "from_run": 1}),
        )
        .await;
    assert_eq!(continued.status(), 200);
    let events = EventReader::new(continued).read_to_end().await;
    assert_eq!(finished(&events).status, MessageStatus::Complete);
    let body = app
        .fake
        .requests()
        .last()
        .cloned()
        .expect("the provider was asked");
    let content = &body["messages"][0]["content"];
    let text = content[0]["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("Look\n\n<file name=\"report.pdf\">\nQuarterly report"),
        "{body}"
    );
    assert!(
        text.ends_with("<file name=\"notes.md\">\n# Plan\nShip it.\n</file>"),
        "{body}"
    );
    let (_, image) = bytes_of(
        &ben,
        &format!("/attachments/{}", question.attachments[0].id),
    )
    .await;
    assert_eq!(
        content[1],
        json!({"type": "image_url",
               "image_url": {"url": format!("data:image/png;base64,{}", base64(&image))}}),
        "{body}"
    );
    // A new question in the imported conversation is sent the earlier one's files too.
    app.fake.reset_log();
    let next = ben
        .post(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": imported_id,
                   "text": "And then?", "model": "claude/claude-fake"}),
        )
        .await;
    assert_eq!(next.status(), 200);
    EventReader::new(next).read_to_end().await;
    let body = app
        .fake
        .requests()
        .last()
        .cloned()
        .expect("the provider was asked");
    let earlier = body["messages"][0]["content"][1]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(earlier.contains("<file name=\"notes.md\">"), "{body}");
    assert_eq!(body["messages"][0]["content"][0]["type"], "image", "{body}");
}

#[tokio::test]
async fn hostile_or_broken_archives_are_refused_in_words_and_lose_nothing() {
    let app = TestApp::with(Setup {
        limits: Some(LimitSettings {
            max_attachment_bytes: 1 << 20,
            ..generous_limits()
        }),
        ..Setup::default()
    })
    .await;
    let me = Person {
        http: app.http.clone(),
        base_url: app.base_url.clone(),
    };
    let good: &[u8] = b"good notes";
    let other: &[u8] = b"other bytes";
    let zeros = vec![0u8; 64 << 20];
    let conversations = [
        // Its file is not in the archive.
        rill_conversation("Missing", &[vec![("gone.txt", sha256(b"not here"))]]),
        // Its entry holds other bytes than its SHA-256 says.
        rill_conversation("Altered", &[vec![("changed.txt", sha256(b"original"))]]),
        // 64 MB of zeros that deflate to a few dozen KB: past the per-file limit.
        rill_conversation("Bomb", &[vec![("zeros.bin", sha256(&zeros))]]),
        // A name that reaches out of the archive's folder.
        rill_conversation(
            "Escape",
            &[vec![("passwd", "../../../../etc/passwd".to_owned())]],
        ),
        // And one that is whole, which is stored.
        rill_conversation("Whole", &[vec![("good.txt", sha256(good))]]),
    ];
    let archive = zipped(&[
        ("conversations.jsonl", &lines(&conversations)),
        (&format!("files/{}", sha256(b"original")), other),
        (&format!("files/{}", sha256(&zeros)), &zeros),
        ("../../../../etc/passwd", b"root:x:0:0"),
        (&format!("files/{}", sha256(good)), good),
    ]);
    assert!(archive.len() < 1 << 20, "{}", archive.len());
    let (imported, skipped, reasons, error) = import(&me, archive).await;
    assert_eq!((imported, skipped, error), (1, 4, None), "{reasons:?}");
    let expected = [
        format!(
            "conversation 1 (“Missing”): its file “gone.txt” is not in the archive (files/{} is \
             missing)",
            sha256(b"not here")
        ),
        "conversation 2 (“Altered”): its file “changed.txt” does not have the SHA-256 it is \
         listed with: the archive is damaged or was changed"
            .to_owned(),
        "conversation 3 (“Bomb”): its file “zeros.bin” is larger than the 1.0 MB this server \
         takes for one file"
            .to_owned(),
        "conversation 4 (“Escape”): its file “passwd” is not named by a SHA-256 (64 hex \
         digits), so it cannot be found in the archive"
            .to_owned(),
    ];
    for (reason, expected) in reasons.iter().zip(&expected) {
        assert_eq!(reason, &format!("conversations.jsonl, {expected}"));
    }
    // Only the whole one is stored, with its one file.
    assert_eq!(app.count("conversations").await, 1);
    assert_eq!(app.count("attachments").await, 1);
    assert_eq!(app.count("blobs").await, 1);
    assert_eq!(app.count("turn_attachments").await, 1);

    // A lone JSON file cannot hold files: a conversation that carried some is left out.
    let alone = serde_json::to_vec(&rill_conversation(
        "Alone",
        &[vec![("good.txt", sha256(good))]],
    ))
    .expect("json");
    let (imported, skipped, reasons, _) = import(&me, alone).await;
    assert_eq!((imported, skipped), (0, 1));
    assert_eq!(
        reasons,
        [
            "the file, conversation 1 (“Alone”): its files are not in this file: import the zip \
          export, which holds them"
        ]
    );
    // A file whose bytes are not what its type must be is refused as an upload would be.
    let fake_png: &[u8] = b"\x89PNG\r\n\x1a\nnot really";
    let archive = zipped(&[
        (
            "conversations.jsonl",
            &lines(&[rill_conversation(
                "Fake",
                &[vec![("x.png", sha256(fake_png))]],
            )]),
        ),
        (&format!("files/{}", sha256(fake_png)), fake_png),
    ]);
    let (imported, _, reasons, _) = import(&me, archive).await;
    assert_eq!(imported, 0);
    assert_eq!(
        reasons,
        ["“Fake”: its file “x.png”: the image could not be read; it may be damaged"]
    );
    // An export made before files were exported (format 1) still imports.
    let old = json!({"format": "rill.conversation", "version": 1, "id": "old", "title": "Old",
                     "model": "fake/fake-model", "created_at": 1, "updated_at": 2,
                     "turns": [{"turn_id": "a", "question": {"text": "q", "created_at": 1},
                                "reply": {"text": "a", "status": "complete", "created_at": 2,
                                          "updated_at": 2}}]});
    let (imported, ..) = import(&me, zipped(&[("conversations.jsonl", &lines(&[old]))])).await;
    assert_eq!(imported, 1);
    assert_eq!(app.count("conversations").await, 2);
    assert_eq!(app.count("attachments").await, 1);
}

#[tokio::test]
async fn imported_files_count_against_the_importers_limits_in_words() {
    let app = TestApp::with(Setup {
        limits: Some(LimitSettings {
            max_attachment_bytes: 64 << 10,
            max_message_attachment_bytes: 96 << 10,
            attachment_bytes_per_day: 160 << 10,
            ..generous_limits()
        }),
        ..Setup::default()
    })
    .await;
    let me = Person {
        http: app.http.clone(),
        base_url: app.base_url.clone(),
    };
    let file = |c: u8| vec![b'a' + c; 60 << 10];
    let (a, b, c, d) = (file(0), file(1), file(2), file(3));
    let conversations = [
        // Two files of 60 KB with one question: more than a message carries.
        rill_conversation(
            "Pair",
            &[vec![("a.txt", sha256(&a)), ("b.txt", sha256(&b))]],
        ),
        // One file a turn: within each message, but 180 KB is more than a day's.
        rill_conversation(
            "Three",
            &[
                vec![("a.txt", sha256(&a))],
                vec![("b.txt", sha256(&b))],
                vec![("c.txt", sha256(&c))],
            ],
        ),
        // 120 KB: stored.
        rill_conversation(
            "Two",
            &[vec![("c.txt", sha256(&c))], vec![("d.txt", sha256(&d))]],
        ),
        // Another 60 KB: the day's allowance is used now.
        rill_conversation("One more", &[vec![("a.txt", sha256(&a))]]),
    ];
    let archive = zipped(&[
        ("conversations.jsonl", &lines(&conversations)),
        (&format!("files/{}", sha256(&a)), &a),
        (&format!("files/{}", sha256(&b)), &b),
        (&format!("files/{}", sha256(&c)), &c),
        (&format!("files/{}", sha256(&d)), &d),
    ]);
    let (imported, skipped, reasons, error) = import(&me, archive).await;
    assert_eq!((imported, skipped, error), (1, 3, None), "{reasons:?}");
    assert_eq!(
        reasons,
        [
            "“Pair”: the files of its turn 1 take 120.0 KB, more than the 96.0 KB one message \
             may carry",
            "“Three”: its files take 180.0 KB, and with the 0 bytes of files you have uploaded \
             today that is more than the 160.0 KB this server takes a day from each person; \
             import it again tomorrow",
            "“One more”: its files take 60.0 KB, and with the 120.0 KB of files you have \
             uploaded today that is more than the 160.0 KB this server takes a day from each \
             person; import it again tomorrow",
        ]
    );
    // The stored one's files count as today's uploads: an upload past the rest is refused.
    assert_eq!(app.count("attachments").await, 2);
    let refused = upload_with(&app.http, &app.base_url, "e.txt", &file(4)).await;
    assert_eq!(refused.status(), 429);
    assert!(error_text(refused).await.contains("try again tomorrow"));
}

#[tokio::test]
async fn a_share_shows_its_files_to_anyone_with_the_link_and_nothing_else_of_the_owner() {
    let app = TestApp::with(Setup {
        access: accounts_mode(),
        ..Setup::default()
    })
    .await;
    app.add_user("alice", false).await;
    let alice = app.signed_in("alice").await;
    let shot = upload(&alice, "shot.png", &png(40, 30)).await;
    let notes = upload(&alice, "notes.md", b"# Plan").await;
    let elsewhere = upload(&alice, "private.txt", b"alice's other file").await;
    let later = upload(&alice, "later.txt", b"sent after the link was made").await;
    let send = |conversation: Option<Uuid>, files: Vec<Uuid>| {
        alice.post(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": "Look",
                   "model": null, "attachments": files}),
        )
    };
    let events = EventReader::new(send(None, vec![shot.id, notes.id]).await)
        .read_to_end()
        .await;
    let conversation = conversation_of(&events);
    EventReader::new(send(None, vec![elsewhere.id]).await)
        .read_to_end()
        .await;
    let shared = alice
        .post(
            "share_conversation",
            json!({"conversation_id": conversation}),
        )
        .await;
    assert_eq!(shared.status(), 200);
    let link: rill::model::shares::SharedLink = shared.json().await.expect("a link");
    // A question asked after the link was made is not in its snapshot.
    EventReader::new(send(Some(conversation), vec![later.id]).await)
        .read_to_end()
        .await;

    // Someone with the link, signed out, sees the thumbnail and the chip…
    let reader = app.visitor();
    let page = reader.get(&link.path).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("the page");
    let at = |id: Uuid| format!("{}/files/{id}", link.path);
    assert!(
        page.contains(&format!(
            "<img class=\"file-thumb\" src=\"{}\" alt=\"shot.png\" loading=\"lazy\">",
            at(shot.id)
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<a class=\"file-chip\" href=\"{}\" download=\"notes.md\">",
            at(notes.id)
        )),
        "{page}"
    );
    assert!(!page.contains(&elsewhere.id.to_string()));
    assert!(!page.contains(&later.id.to_string()));
    // …and gets the files through the link, as their owner does.
    let image = reader.get(&at(shot.id)).await;
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_eq!(image.headers()["x-content-type-options"], "nosniff");
    assert!(image.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .starts_with("inline;"));
    let (_, owners) = bytes_of(&alice, &format!("/attachments/{}", shot.id)).await;
    assert_eq!(image.bytes().await.expect("bytes").to_vec(), owners);
    let chip = reader.get(&at(notes.id)).await;
    assert_eq!(chip.status(), 200);
    assert!(chip.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .starts_with("attachment;"));
    assert_eq!(chip.text().await.expect("text"), "# Plan");

    // The owner's other files, through the same link, answer as an id that does not exist.
    let nothing = bytes_of(&reader, &at(Uuid::new_v4())).await;
    assert_eq!(nothing.0, 404);
    for other in [&elsewhere, &later] {
        assert_eq!(
            bytes_of(&reader, &at(other.id)).await,
            nothing,
            "{}",
            other.name
        );
    }
    // Nor does a guessed token reach a file.
    let guessed = format!("/s/{}/files/{}", "0".repeat(64), shot.id);
    assert_eq!(bytes_of(&reader, &guessed).await, nothing);

    // Revoked: the page and its files are gone.
    let revoked = alice.post("revoke_share", json!({"id": link.id})).await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(reader.get(&link.path).await.status(), 404);
    assert_eq!(bytes_of(&reader, &at(shot.id)).await, nothing);
    assert_eq!(bytes_of(&reader, &at(notes.id)).await, nothing);
}

#[tokio::test]
async fn a_backup_holds_the_files_with_the_messages_that_carry_them() {
    let app = TestApp::start(FakeConfig::default()).await;
    let me = Person {
        http: app.http.clone(),
        base_url: app.base_url.clone(),
    };
    let shot = upload(&me, "shot.png", &png(40, 30)).await;
    let notes = upload(&me, "notes.md", b"# Plan").await;
    let sent = me
        .post(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "Look",
                   "model": null, "attachments": [shot.id, notes.id]}),
        )
        .await;
    EventReader::new(sent).read_to_end().await;
    // What `rill backup` does, beside the running server.
    let dir = private_dir();
    let copy = dir.path().join("backup.db");
    let backup = rill::server::db::backup(&app.state.config.database, &copy).await;
    if app.state.db.engine() == rill::server::db::Engine::Postgres {
        // `rill backup` is SQLite's copy; on Postgres it names Postgres's own tool instead.
        let said = backup
            .expect_err("no copy of a Postgres database")
            .to_string();
        assert!(said.contains("pg_dump"), "{said}");
        assert!(!copy.exists());
        return;
    }
    backup.expect("backed up");
    let restored = rill::server::db::connect(&rill::server::config::Database::Sqlite(copy))
        .await
        .expect("the copy opens");
    let owner = rill::server::db::Owner("local".into());
    for file in [&shot, &notes] {
        let kept = rill::server::db::attachments::find_attachment(&restored, &owner, file.id)
            .await
            .expect("read")
            .expect("the file is in the copy");
        assert_eq!(kept.view, *file);
        let bytes = rill::server::db::attachments::blob_bytes(&restored, &owner, &kept.sha256)
            .await
            .expect("its bytes");
        let (_, served) = bytes_of(&me, &format!("/attachments/{}", file.id)).await;
        assert_eq!(bytes, served, "{}", file.name);
    }
}
