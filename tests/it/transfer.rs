//! Import and export: a conversation out as Markdown and JSON, all of them as a zip, and back in
//! (branches included); ChatGPT's and Claude's exports in (fixtures written from their
//! documented and observed structure, odd nodes included); malformed and hostile files refused
//! in words that name where; each person's conversations their own; the quota kept.

use std::io::{Read, Write};

use fake_provider::FakeConfig;
use rill::model::transfer::ImportLine;
use rill::model::{ConversationSummary, Role};
use rill::server::config::LimitSettings;
use rill::server::db::{self, Owner};
use rill::server::export_format::Conversation;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

const CHATGPT: &str = include_str!("fixtures/chatgpt-conversations.json");
const CLAUDE: &str = include_str!("fixtures/claude-conversations.json");
const CLAUDE_BRANCHES: &str = include_str!("fixtures/claude-branches.json");

/// Posts `bytes` to `/import` as the page does and reads every line of the answer.
async fn import_with(
    http: &reqwest::Client,
    base_url: &str,
    bytes: Vec<u8>,
) -> (u16, Vec<ImportLine>, String) {
    let response = http
        .post(format!("{base_url}/import"))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("request reaches the app");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    let lines = if status == 200 {
        body.lines()
            .map(|l| serde_json::from_str(l).expect("an import line"))
            .collect()
    } else {
        Vec::new()
    };
    (status, lines, body)
}

async fn import(app: &TestApp, bytes: Vec<u8>) -> Vec<ImportLine> {
    let (status, lines, body) = import_with(&app.http, &app.base_url, bytes).await;
    assert_eq!(status, 200, "{body}");
    lines
}

/// The last line: how the import ended (summary, and the error if it failed).
fn ending(lines: &[ImportLine]) -> (u32, u32, Vec<String>, Option<String>) {
    match lines.last() {
        Some(ImportLine::Done(s)) => (s.imported, s.skipped, s.reasons.clone(), None),
        Some(ImportLine::Failed { error, summary }) => (
            summary.imported,
            summary.skipped,
            summary.reasons.clone(),
            Some(error.clone()),
        ),
        other => panic!("an import ends with its summary, not {other:?}"),
    }
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.base_url))
        .send()
        .await
        .expect("request reaches the app")
}

async fn exported(app: &TestApp, id: Uuid) -> Conversation {
    let response = get(app, &format!("/export/{id}/json")).await;
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("attachment;")));
    response.json().await.expect("the export is Rill's JSON")
}

async fn list(app: &TestApp) -> Vec<ConversationSummary> {
    db::list_conversations(&app.state.db, &Owner("local".into()), None)
        .await
        .expect("list")
}

/// What must survive a round trip: titles, prompts, every turn's texts, figures and place in
/// the tree (parents named by their index, since ids are new), and the branch on screen.
fn shape(c: &Conversation) -> Value {
    let index = |id: &Option<String>| {
        id.as_ref()
            .and_then(|id| c.turns.iter().position(|t| &t.turn_id == id))
    };
    json!({
        "title": c.title,
        "model": c.model,
        "revision": c.system_prompt_revision,
        "prompts": c.system_prompts.iter().map(|p| (p.revision, p.text.clone())).collect::<Vec<_>>(),
        "current": index(&c.current_turn_id),
        "turns": c.turns.iter().map(|t| json!({
            "parent": index(&t.parent_turn_id),
            "question": t.question.text,
            "reply": t.reply.text,
            "thinking": t.reply.thinking,
            "status": t.reply.status,
            "model": t.reply.model,
            "usage": t.reply.usage,
            "cost": t.reply.cost_usd,
            "revision": t.reply.system_prompt_revision,
        })).collect::<Vec<_>>(),
    })
}

/// A conversation with a system prompt and a regenerated answer (two branches).
async fn branched(app: &TestApp) -> Uuid {
    let first = app.turn(None, "Q1").await;
    let conversation = conversation_of(&first);
    let response = app
        .post_json(
            "set_system_prompt",
            json!({"id": conversation, "system_prompt": "Be terse."}),
        )
        .await;
    assert_eq!(response.status(), 200);
    app.turn(Some(conversation), "Q2").await;
    let q2 = app.stored(conversation).await.messages[2].turn_id;
    let response = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": "Q2 again",
                   "model": null, "alternative_to": q2}),
        )
        .await;
    assert_eq!(response.status(), 200);
    EventReader::new(response).read_to_end().await;
    conversation
}

#[tokio::test]
async fn a_conversation_exported_as_json_imports_back_the_same_branches_included() {
    let app = TestApp::start(FakeConfig::default()).await;
    let original = branched(&app).await;
    let before = exported(&app, original).await;
    assert_eq!(before.turns.len(), 3, "Q1, Q2 and its alternative");
    assert_eq!(before.system_prompts.len(), 1);
    let bytes = serde_json::to_vec_pretty(&before).expect("json");
    let lines = import(&app, bytes.clone()).await;
    assert!(matches!(lines.first(), Some(ImportLine::Started { .. })));
    assert_eq!(ending(&lines), (1, 0, vec![], None));
    let copy = list(&app)
        .await
        .into_iter()
        .find(|c| c.id != original)
        .expect("the imported copy");
    let after = exported(&app, copy.id).await;
    assert_eq!(shape(&after), shape(&before));
    assert!(after.turns.iter().all(|t| t.reply.imported));
    // The page opens it on the same branch.
    let view = app.stored(copy.id).await;
    let texts: Vec<&str> = view.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts[0], "Q1");
    assert_eq!(texts[2], "Q2 again");
    // The same file again is skipped: it is here already.
    let again = import(&app, bytes).await;
    let (imported, skipped, reasons, error) = ending(&again);
    assert_eq!((imported, skipped, error), (0, 1, None));
    assert!(reasons[0].contains("imported before"), "{reasons:?}");
}

#[tokio::test]
async fn markdown_reads_the_branch_on_screen() {
    let app = TestApp::start(FakeConfig::default()).await;
    let conversation = branched(&app).await;
    let response = get(&app, &format!("/export/{conversation}/markdown")).await;
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/markdown")));
    let text = response.text().await.expect("markdown");
    assert!(text.starts_with("# Q1\n"), "{text}");
    assert!(text.contains("**System prompt:**\n\n> Be terse."));
    assert!(text.contains("## You\n\nQ2 again\n"));
    assert!(
        !text.contains("## You\n\nQ2\n"),
        "the other branch is not on screen"
    );
    let unknown = get(&app, &format!("/export/{}/markdown", Uuid::new_v4())).await;
    assert_eq!(unknown.status(), 404);
    let nonsense = get(&app, &format!("/export/{conversation}/pdf")).await;
    assert_eq!(nonsense.status(), 404);
}

/// The entries of a zip archive, names and bytes, in order.
pub fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip archive");
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).expect("entry");
            let mut data = Vec::new();
            file.read_to_end(&mut data).expect("entry reads");
            (file.name().to_owned(), data)
        })
        .collect()
}

/// A zip of `files` (deflated) in order.
pub fn zipped(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("entry");
        zip.write_all(data).expect("written");
    }
    zip.finish().expect("zip").into_inner()
}

#[tokio::test]
async fn the_archive_holds_every_conversation_and_imports_into_another_account() {
    let app = TestApp::with_accounts().await;
    app.add_user("ana", false).await;
    app.add_user("ben", false).await;
    let ana = app.signed_in("ana").await;
    let ben = app.signed_in("ben").await;
    for text in ["first", "second", "third"] {
        ana.turn(None, text).await;
    }
    let response = ana.get("/export/all.zip").await;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.expect("archive");
    let files = unzip(&bytes);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, "conversations.jsonl");
    let lines: Vec<Conversation> = String::from_utf8(files[0].1.clone())
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a conversation a line"))
        .collect();
    let mut titles: Vec<&str> = lines.iter().map(|c| c.title.as_str()).collect();
    titles.sort_unstable();
    assert_eq!(titles, ["first", "second", "third"]);
    // Ben's archive holds nothing of Ana's; Ana's conversations are not Ben's to export.
    let theirs = unzip(
        &ben.get("/export/all.zip")
            .await
            .bytes()
            .await
            .expect("archive"),
    );
    assert!(theirs[0].1.is_empty());
    let anas = &lines[0].id;
    assert_eq!(ben.get(&format!("/export/{anas}/json")).await.status(), 404);
    assert_eq!(
        ben.get(&format!("/export/{anas}/markdown")).await.status(),
        404
    );
    // Ben imports Ana's archive: copies of his own, Ana's untouched.
    let (status, imported, body) = import_with(&ben.http, &ben.base_url, bytes.to_vec()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ending(&imported), (3, 0, vec![], None));
    let owners: Vec<(String, i64)> =
        sql("SELECT owner, COUNT(*) FROM conversations GROUP BY owner ORDER BY owner")
            .fetch_all(&app.state.db)
            .await;
    assert_eq!(owners.len(), 2);
    assert!(owners.iter().all(|(_, n)| *n == 3), "{owners:?}");
    // Nobody signed in reaches neither.
    let visitor = app.visitor();
    assert_ne!(visitor.get("/export/all.zip").await.status(), 200);
    let (status, _, _) = import_with(&visitor.http, &visitor.base_url, bytes.to_vec()).await;
    assert_ne!(status, 200);
    assert_eq!(app.count("conversations").await, 6);
}

#[tokio::test]
async fn chatgpt_keeps_its_tree_as_branches_and_continues_with_a_model_here() {
    let app = TestApp::start(FakeConfig::default()).await;
    let lines = import(&app, CHATGPT.as_bytes().to_vec()).await;
    let (imported, skipped, reasons, error) = ending(&lines);
    assert_eq!((imported, skipped, error), (2, 1, None));
    assert!(
        reasons[0].contains("conversation 3 (“Two roots”)") && reasons[0].contains("2 roots"),
        "{reasons:?}"
    );
    let conversations = list(&app).await;
    let lisbon = conversations
        .iter()
        .find(|c| c.title == "Trip to Lisbon")
        .expect("imported");
    let c = exported(&app, lisbon.id).await;
    assert_eq!(c.system_prompts.len(), 1);
    assert_eq!(
        c.system_prompts[0].text,
        "I live in Porto.\n\nAnswer briefly."
    );
    let turns: Vec<(Option<usize>, &str, &str, &str)> = c
        .turns
        .iter()
        .map(|t| {
            let parent = t
                .parent_turn_id
                .as_ref()
                .and_then(|p| c.turns.iter().position(|o| &o.turn_id == p));
            (
                parent,
                t.question.text.as_str(),
                t.reply.text.as_str(),
                t.reply.thinking.as_str(),
            )
        })
        .collect();
    assert_eq!(
        turns,
        [
            (None, "What should I see in Lisbon?", "Belém Tower and Alfama.", ""),
            (
                Some(0),
                "*[image, 800×600: not included in the export]*\n\nWhat is in this photo?",
                "```python\nprint('tram 28')\n```\n\n*Output:*\n\n```\ntram 28\n```\n\nIt is tram 28.",
                ""
            ),
            (Some(1), "Thanks!", "You are welcome!", "Politeness\nReply warmly."),
            (Some(1), "Thanks, and Sintra?", "Sintra is a day trip.", ""),
            (None, "What should I see in Lisbon?", "Try the LX Factory.", ""),
        ]
    );
    assert_eq!(c.turns[2].reply.model.as_deref(), Some("chatgpt/o3"));
    // `current_node` is the branch the page opens on.
    let view = app.stored(lisbon.id).await;
    let shown: Vec<&str> = view.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(shown.last(), Some(&"You are welcome!"));
    assert_eq!(view.messages.len(), 6);
    assert!(view
        .messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .all(|m| m.outcome.imported));
    // Its next turn goes to a model of this server, and is spent here.
    assert!(app.state.catalog.contains(&c.model), "{}", c.model);
    let spent_before = app.count("spending").await;
    let events = app.turn(Some(lisbon.id), "And Porto?").await;
    assert!(!finished(&events).imported);
    assert_eq!(app.count("spending").await, spent_before + 1);
    let view = app.stored(lisbon.id).await;
    let last = view.messages.last().expect("the new reply");
    assert!(!last.outcome.imported);
    assert_eq!(view.messages.len(), 8);
    // The model saw the imported branch as its history.
    let request = app.fake.requests().last().cloned().expect("a request");
    let sent: Vec<&str> = request["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(sent.contains(&"You are welcome!"), "{sent:?}");
    // A question the export holds no answer to can be asked again here.
    let greeting = conversations
        .iter()
        .find(|c| c.title == "Greeting with no answer")
        .expect("imported");
    let view = app.stored(greeting.id).await;
    assert_eq!(
        view.messages[1].outcome.error.as_deref(),
        Some("the export holds no answer to this question")
    );
}

#[tokio::test]
async fn chatgpt_split_archives_import_every_file_in_order() {
    let app = TestApp::start(FakeConfig::default()).await;
    let all: Vec<Value> = serde_json::from_str(CHATGPT).expect("fixture");
    let first = serde_json::to_vec(&all[..1]).expect("json");
    let second = serde_json::to_vec(&all[1..2]).expect("json");
    let bytes = zipped(&[
        ("chat.html", b"<html></html>"),
        ("conversations-001.json", &second),
        ("conversations-000.json", &first),
        ("user.json", b"{}"),
        ("file-Abc123.png", b"\x89PNG"),
    ]);
    let lines = import(&app, bytes).await;
    match lines.first() {
        Some(ImportLine::Started { format }) => assert!(
            format.contains("conversations-000.json, conversations-001.json"),
            "{format}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(ending(&lines), (2, 0, vec![], None));
    let mut titles: Vec<String> = list(&app).await.into_iter().map(|c| c.title).collect();
    titles.sort();
    assert_eq!(titles, ["Greeting with no answer", "Trip to Lisbon"]);
}

#[tokio::test]
async fn claude_conversations_import_with_attachments_tools_and_thinking() {
    let app = TestApp::start(FakeConfig::default()).await;
    let lines = import(&app, CLAUDE.as_bytes().to_vec()).await;
    let (imported, skipped, reasons, error) = ending(&lines);
    assert_eq!((imported, skipped, error), (2, 1, None));
    assert!(
        reasons[0].contains("conversation 3 (“Odd sender”)")
            && reasons[0].contains("message 1 is from \"moderator\""),
        "{reasons:?}"
    );
    let conversations = list(&app).await;
    let rust = conversations
        .iter()
        .find(|c| c.title == "Rust lifetimes")
        .expect("imported");
    let c = exported(&app, rust.id).await;
    assert_eq!(c.turns.len(), 1);
    let turn = &c.turns[0];
    assert_eq!(
        turn.question.text,
        "Explain this error\n\n*Attached error.txt:*\n\n```\nerror[E0597]: borrowed value does not live long enough\n```\n\n*[screenshot.png: not included in the export]*"
    );
    assert_eq!(turn.reply.thinking, "The value is dropped while borrowed.");
    assert!(turn
        .reply
        .text
        .starts_with("The value is dropped while still borrowed.\n\n*Used web_search:*"));
    assert!(turn
        .reply
        .text
        .contains("*From web_search:*\n\n> E0597: a value was dropped while borrowed"));
    assert!(turn
        .reply
        .text
        .ends_with("Move the value out of the inner scope."));
    assert_eq!(c.created_at, 1_740_823_200_000);
    // Untitled: named by its first question.
    assert!(conversations.iter().any(|c| c.title == "Name three rivers"));
}

/// A conversation's turns as (question, answer, the question of the turn it follows).
fn turns_shape(c: &Conversation) -> Vec<(String, String, Option<String>)> {
    c.turns
        .iter()
        .map(|t| {
            let parent = t.parent_turn_id.as_ref().map(|p| {
                c.turns
                    .iter()
                    .find(|o| &o.turn_id == p)
                    .map(|o| o.question.text.clone())
                    .expect("a parent among the turns")
            });
            (t.question.text.clone(), t.reply.text.clone(), parent)
        })
        .collect()
}

fn current_answer(c: &Conversation) -> String {
    let current = c.current_turn_id.as_ref().expect("a branch on screen");
    c.turns
        .iter()
        .find(|t| &t.turn_id == current)
        .map(|t| t.reply.text.clone())
        .expect("the current turn")
}

#[tokio::test]
async fn claude_branches_are_kept_from_parent_message_uuids() {
    let app = TestApp::start(FakeConfig::default()).await;
    let lines = import(&app, CLAUDE_BRANCHES.as_bytes().to_vec()).await;
    let (imported, skipped, reasons, error) = ending(&lines);
    assert_eq!((imported, skipped, error), (2, 1, None));
    assert!(
        reasons[0].contains("conversation 3 (“Circle”)")
            && reasons[0].contains("2 of its messages follow one another in a circle"),
        "{reasons:?}"
    );
    let conversations = list(&app).await;
    let id_of = |title: &str| {
        conversations
            .iter()
            .find(|c| c.title == title)
            .map(|c| c.id)
            .expect("imported")
    };
    // An edited question and a retried answer: each a branch after the first turn.
    let trip = exported(&app, id_of("Trip")).await;
    let first = Some("Plan a trip".to_owned());
    assert_eq!(
        turns_shape(&trip),
        [
            ("Plan a trip".into(), "Where to?".into(), None),
            (
                "Lisbon".into(),
                "Lisbon: ride the trams.".into(),
                first.clone()
            ),
            (
                "Porto".into(),
                "Porto: taste the wine.".into(),
                first.clone()
            ),
            ("Porto".into(), "Porto: walk the bridges.".into(), first),
        ]
    );
    // The leaf Claude names is the branch on screen, not the last message listed.
    assert_eq!(current_answer(&trip), "Porto: taste the wine.");
    // The first question edited: two roots; with no leaf named, the last message's branch.
    let edited = exported(&app, id_of("First question edited")).await;
    assert_eq!(
        turns_shape(&edited),
        [
            ("Hello".into(), "Hello to you.".into(), None),
            ("Hi".into(), "Hi there.".into(), None),
        ]
    );
    assert_eq!(current_answer(&edited), "Hi there.");
    // What the page shows after the import is that branch.
    let shown = app.stored(id_of("Trip")).await;
    let texts: Vec<&str> = shown.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Plan a trip",
            "Where to?",
            "Porto",
            "Porto: taste the wine."
        ]
    );
}

#[tokio::test]
async fn malformed_and_hostile_files_are_refused_in_words_naming_where() {
    let app = TestApp::start(FakeConfig::default()).await;
    // Not JSON at all.
    let (_, _, _, error) = ending(&import(&app, b"hello".to_vec()).await);
    assert_eq!(
        error.as_deref(),
        Some("the file is not JSON: it starts with 'h' where a [ or { was expected")
    );
    // Cut off in its second conversation: the first is stored whole, the second not at all.
    let all: Vec<Value> = serde_json::from_str(CHATGPT).expect("fixture");
    let whole = serde_json::to_string(&all[..2]).expect("json");
    let cut = &whole[..whole.len() - 40];
    let (imported, _, _, error) = ending(&import(&app, cut.as_bytes().to_vec()).await);
    assert_eq!(imported, 1);
    let error = error.expect("an error");
    assert!(
        error.starts_with("the file is not valid JSON, in conversation 2: EOF while parsing"),
        "{error}"
    );
    assert_eq!(app.count("conversations").await, 1);
    // A zip with nothing Rill reads, and one that is not whole.
    let (_, _, _, error) = ending(&import(&app, zipped(&[("notes.txt", b"hi")])).await);
    assert!(error
        .expect("an error")
        .contains("holds no conversations.json"));
    let mut broken = zipped(&[("conversations.json", CHATGPT.as_bytes())]);
    broken.truncate(broken.len() / 2);
    let (_, _, _, error) = ending(&import(&app, broken).await);
    assert_eq!(
        error.as_deref(),
        Some("the zip archive has no end record (is it whole?)")
    );
    // An archive listing more files than Rill holds is refused before its list is read.
    let names: Vec<String> = (0..100_001).map(|i| i.to_string()).collect();
    let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    let (_, _, _, error) = ending(&import(&app, zipped(&many)).await);
    assert_eq!(
        error.as_deref(),
        Some("the zip archive lists 100001 files; Rill reads archives of at most 100000")
    );
    // Conversations Rill cannot make sense of are skipped, each named, nothing of them stored.
    let rill = |turns: Value| {
        json!({"format": "rill.conversation", "version": 1, "id": "x", "title": "Loop",
               "model": "fake/m", "created_at": 0, "updated_at": 0, "turns": turns})
    };
    let turn = |id: &str, parent: Option<&str>| {
        json!({"turn_id": id, "parent_turn_id": parent,
               "question": {"text": "q", "created_at": 0},
               "reply": {"text": "a", "status": "complete", "created_at": 0, "updated_at": 0}})
    };
    let bad = json!([
        rill(json!([turn("a", Some("b")), turn("b", Some("a"))])),
        {"format": "rill.conversation", "version": 99, "id": "y", "title": "Future"},
        {"mapping": {"n": {"children": "not a list"}}, "title": "Odd"},
        [1, 2, 3],
        {"hello": "world"},
    ]);
    let messages_before = app.count("messages").await;
    let (imported, skipped, reasons, error) =
        ending(&import(&app, serde_json::to_vec(&bad).expect("json")).await);
    assert_eq!((imported, skipped, error), (0, 5, None));
    assert!(
        reasons[0]
            .contains("conversation 1 (“Loop”): turn 1 follows turn \"b\", which is not before it"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("exported by a newer Rill (format version 99"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("conversation 3 (“Odd”): it is not shaped as expected: invalid type"),
        "{reasons:?}"
    );
    assert!(
        reasons[3].contains("conversation 4: it is not an object"),
        "{reasons:?}"
    );
    assert!(
        reasons[4].contains("conversation 5: it is not a conversation of ChatGPT"),
        "{reasons:?}"
    );
    assert_eq!(app.count("messages").await, messages_before);
    // One conversation past what is read at once stops the import there, in words.
    let huge = format!(
        "[{{\"title\": \"Huge\", \"mapping\": {{}}, \"padding\": \"{}\"}}]",
        "x".repeat(17 << 20)
    );
    let (_, _, _, error) = ending(&import(&app, huge.into_bytes()).await);
    assert_eq!(
        error.as_deref(),
        Some("the file: conversation 1 is larger than the 16 MB Rill imports at once")
    );
    // An empty upload is refused before anything.
    let (status, _, body) = import_with(&app.http, &app.base_url, Vec::new()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("the file is empty"));
}

#[tokio::test]
async fn an_upload_past_the_limit_is_refused_and_the_quota_holds() {
    let app = TestApp::with(Setup {
        limits: Some(LimitSettings {
            max_import_bytes: 4096,
            storage_quota_bytes: Some(300),
            ..generous_limits()
        }),
        ..Setup::default()
    })
    .await;
    let (status, _, body) =
        import_with(&app.http, &app.base_url, CHATGPT.as_bytes().to_vec()).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than the 4.0 KB"), "{body}");
    assert_eq!(app.count("conversations").await, 0);
    // Within the upload limit but past the quota: skipped in the quota's words.
    let claude: Vec<Value> = serde_json::from_str(CLAUDE).expect("fixture");
    let bytes = serde_json::to_vec(&claude[..2]).expect("json");
    let (imported, skipped, reasons, error) = ending(&import(&app, bytes).await);
    assert_eq!((imported, skipped, error), (1, 1, None));
    assert!(
        reasons[0].contains("this server keeps for each person"),
        "{reasons:?}"
    );
    let used: i64 = sql("SELECT bytes FROM storage_used WHERE owner = 'local'")
        .scalar(&app.state.db)
        .await;
    assert!(used <= 300, "{used}");
}

#[tokio::test]
async fn a_person_imports_one_file_at_a_time() {
    use futures::SinkExt;
    let app = TestApp::start(FakeConfig::default()).await;
    // An upload that has begun and not ended.
    let (mut sending, body) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let first = tokio::spawn({
        let http = app.http.clone();
        let url = format!("{}/import", app.base_url);
        async move {
            http.post(url)
                .header("content-type", "application/octet-stream")
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
                .expect("the first import answers")
                .text()
                .await
                .expect("its lines")
        }
    });
    sending.send(Ok(b"[".to_vec())).await.expect("sent");
    eventually(
        "the second import is refused while the first runs",
        || async {
            let (status, _, body) =
                import_with(&app.http, &app.base_url, CLAUDE.as_bytes().to_vec()).await;
            status == 409 && body.contains("an import of yours is running already")
        },
    )
    .await;
    // The first ends (cut short: not JSON), and the next is taken.
    drop(sending);
    let answer = first.await.expect("the first import");
    let last: ImportLine =
        serde_json::from_str(answer.lines().last().expect("a line")).expect("an import line");
    assert!(matches!(last, ImportLine::Failed { .. }), "{last:?}");
    let (imported, _, _, error) = ending(&import(&app, CLAUDE.as_bytes().to_vec()).await);
    assert_eq!((imported, error), (2, None));
}
