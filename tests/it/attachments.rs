//! Attachments (issue 26): uploads typed by their bytes, served safely and to their owner only,
//! deduplicated per person, bounded per file, per message and per day, sent to each provider
//! as text blocks, and deleted with the conversations that carried them.

use fake_provider::FakeConfig;
use rill::model::attachments::{AttachmentKind, AttachmentView};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::sql::sql;
use crate::support::*;

/// A picture `width` × `height` in `format`, a gradient so that it is not trivially small.
pub(crate) fn picture(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let pixels = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(pixels)
        .write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .expect("encodes");
    bytes
}

pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    picture(width, height, image::ImageFormat::Png)
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let decoded = image::load_from_memory(bytes).expect("an image");
    (decoded.width(), decoded.height())
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) async fn upload_with(
    http: &reqwest::Client,
    base_url: &str,
    name: &str,
    bytes: &[u8],
) -> reqwest::Response {
    http.post(format!("{base_url}/attachments"))
        .query(&[("name", name)])
        // What the browser says the type is counts for nothing.
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("request reaches the app")
}

async fn upload(app: &TestApp, name: &str, bytes: &[u8]) -> AttachmentView {
    let response = upload_with(&app.http, &app.base_url, name, bytes).await;
    assert_eq!(response.status(), 200, "{name} uploads");
    response.json().await.expect("an attachment")
}

async fn download(app: &TestApp, id: Uuid) -> reqwest::Response {
    app.http
        .get(format!("{}/attachments/{id}", app.base_url))
        .send()
        .await
        .expect("request reaches the app")
}

pub(crate) fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Sends `text` with `files` (on `model`) and reads the turn to its end.
async fn send_with(
    app: &TestApp,
    conversation: Option<Uuid>,
    text: &str,
    model: Option<&str>,
    files: &[Uuid],
) -> Vec<rill::model::TurnEnvelope> {
    let response = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": text,
                   "model": model, "attachments": files}),
        )
        .await;
    assert_eq!(response.status(), 200, "the send is accepted");
    EventReader::new(response).read_to_end().await
}

pub(crate) async fn error_text(response: reqwest::Response) -> String {
    let error: Value = response.json().await.expect("an error body");
    error
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn types_come_from_the_bytes_and_nothing_uploaded_runs() {
    let app = TestApp::start(FakeConfig::default()).await;

    // A PNG named .txt is an image, shown inline as one.
    let shot = upload(&app, "screenshot.txt", &png(8, 6)).await;
    assert_eq!(shot.kind, AttachmentKind::Image);
    assert_eq!(shot.mime, "image/png");
    let served = download(&app, shot.id).await;
    assert_eq!(served.status(), 200);
    assert_eq!(header(&served, "content-type"), "image/png");
    assert!(header(&served, "content-disposition").starts_with("inline;"));
    assert_eq!(header(&served, "x-content-type-options"), "nosniff");
    let bytes = served.bytes().await.expect("bytes");
    assert_eq!(bytes.len() as u64, shot.size);
    assert_eq!(dimensions(&bytes), (8, 6));

    // HTML named .png is text, and a download.
    let html = b"<!doctype html><script>alert(document.cookie)</script>";
    let page = upload(&app, "cat.png", html).await;
    assert_eq!(page.kind, AttachmentKind::Text);
    assert_eq!(page.mime, "text/plain; charset=utf-8");
    let served = download(&app, page.id).await;
    assert_eq!(header(&served, "content-type"), "text/plain; charset=utf-8");
    assert!(header(&served, "content-disposition").starts_with("attachment;"));
    assert_eq!(served.bytes().await.expect("bytes").as_ref(), html);

    // An SVG with a script: text, a download, under a policy that runs nothing.
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let drawing = upload(&app, "logo.svg", svg).await;
    assert_eq!(drawing.kind, AttachmentKind::Text);
    let served = download(&app, drawing.id).await;
    assert_eq!(header(&served, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        header(&served, "content-disposition"),
        "attachment; filename=\"logo.svg\"; filename*=UTF-8''logo.svg"
    );
    assert_eq!(header(&served, "x-content-type-options"), "nosniff");
    assert!(header(&served, "content-security-policy").starts_with("default-src 'none'"));

    // Binary that is no known type: a download as octet-stream.
    let blob = upload(&app, "data.bin", &[0u8, 1, 2, 3, 0xFF]).await;
    assert_eq!(blob.kind, AttachmentKind::File);
    assert_eq!(blob.mime, "application/octet-stream");

    // Nothing at all is refused in words.
    let empty = upload_with(&app.http, &app.base_url, "empty.txt", b"").await;
    assert_eq!(empty.status(), 400);
    assert_eq!(error_text(empty).await, "the file is empty");
}

#[tokio::test]
async fn a_person_uploading_the_same_file_twice_stores_it_once() {
    let app = TestApp::start(FakeConfig::default()).await;
    let first = upload(&app, "a.png", &png(4, 4)).await;
    let second = upload(&app, "b.png", &png(4, 4)).await;
    assert_ne!(first.id, second.id, "two uploads, each with its own name");
    assert_eq!(app.count("attachments").await, 2);
    assert_eq!(app.count("blobs").await, 1, "one blob for one content");
    assert_eq!(app.count("blob_chunks").await, 1);
    // A file over one chunk is stored and read back in chunks, byte for byte.
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let stored = upload(&app, "big.bin", &big).await;
    assert_eq!(app.count("blob_chunks").await, 1 + 3);
    let served = download(&app, stored.id).await;
    assert_eq!(header(&served, "content-length"), "700000");
    assert_eq!(
        served.bytes().await.expect("bytes").as_ref(),
        big.as_slice()
    );
}

#[tokio::test]
async fn files_are_served_to_their_owner_alone() {
    let app = TestApp::with_accounts().await;
    app.add_user("ada", false).await;
    app.add_user("bob", false).await;
    let ada = app.signed_in("ada").await;
    let bob = app.signed_in("bob").await;
    let response = upload_with(&ada.http, &ada.base_url, "secret.txt", b"ada's secret").await;
    assert_eq!(response.status(), 200);
    let file: AttachmentView = response.json().await.expect("an attachment");
    let mine = ada.get(&format!("/attachments/{}", file.id)).await;
    assert_eq!(mine.status(), 200);
    assert_eq!(mine.text().await.expect("text"), "ada's secret");

    // Bob gets exactly what an id that does not exist gets.
    let theirs = bob.get(&format!("/attachments/{}", file.id)).await;
    let nobody = bob.get(&format!("/attachments/{}", Uuid::new_v4())).await;
    assert_eq!(theirs.status(), 404);
    assert_eq!(nobody.status(), 404);
    assert_eq!(
        theirs.bytes().await.expect("body"),
        nobody.bytes().await.expect("body")
    );
    // Nor can Bob send it with a message of his.
    let sent = bob
        .post(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "what is this?",
                   "model": null, "attachments": [file.id]}),
        )
        .await;
    assert_eq!(sent.status(), 404);
    // And someone not signed in is sent to sign in, whether uploading or downloading.
    let visitor = app.visitor();
    let upload = upload_with(&visitor.http, &visitor.base_url, "x.txt", b"x").await;
    assert_eq!(upload.status(), 303);
    assert_eq!(header(&upload, "location"), "/signin");
    let download = visitor.get(&format!("/attachments/{}", file.id)).await;
    assert_eq!(download.status(), 303);
}

#[tokio::test]
async fn limits_per_file_per_message_and_per_day_are_refused_in_words() {
    let app = TestApp::with(Setup {
        limits: Some(rill::server::config::LimitSettings {
            max_attachment_bytes: 1000,
            max_message_attachment_bytes: 1500,
            attachment_bytes_per_day: 3500,
            ..generous_limits()
        }),
        ..Setup::default()
    })
    .await;
    // The page is told the limits before it uploads anything (it refuses a file beyond them
    // without sending it; end2end/tests/attachments.spec.ts).
    let limits = || async {
        let answer = app.post_json("file_limits", json!({})).await;
        assert_eq!(answer.status(), 200);
        answer
            .json::<rill::model::attachments::AttachmentLimits>()
            .await
            .expect("the limits")
    };
    assert_eq!(
        limits().await,
        rill::model::attachments::AttachmentLimits {
            per_file: 1000,
            per_message: 1500,
            per_day: 3500,
            used_today: 0,
        }
    );
    let too_big = upload_with(&app.http, &app.base_url, "big.txt", &[b'a'; 1001]).await;
    assert_eq!(too_big.status(), 413);
    assert_eq!(
        error_text(too_big).await,
        "the file is larger than the 1000 bytes this server takes for one file"
    );
    // A body with no declared length is cut at the limit all the same.
    let stream = futures::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'b'; 400]))),
    );
    let chunked = app
        .http
        .post(format!("{}/attachments?name=s.txt", app.base_url))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("request reaches the app");
    assert_eq!(chunked.status(), 413);

    let a = upload(&app, "a.txt", &[b'a'; 1000]).await;
    let b = upload(&app, "b.txt", &[b'b'; 1000]).await;
    let sent = app
        .post_json(
            "send_message",
            json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "both",
                   "model": null, "attachments": [a.id, b.id]}),
        )
        .await;
    assert_eq!(sent.status(), 413);
    assert_eq!(
        error_text(sent).await,
        "the attached files take 2.0 KB, more than the 1.5 KB one message may carry"
    );
    assert_eq!(app.count("messages").await, 0, "nothing was stored");
    assert_eq!(app.count("turn_attachments").await, 0);

    // 2000 bytes uploaded today (refused uploads do not count); 1000 more fit, then no more.
    assert_eq!(limits().await.used_today, 2000);
    upload(&app, "c.txt", &[b'c'; 1000]).await;
    let over = upload_with(&app.http, &app.base_url, "d.txt", &[b'd'; 600]).await;
    assert_eq!(over.status(), 429);
    assert_eq!(
        error_text(over).await,
        "you have uploaded 2.9 KB of files today, and this server takes 3.4 KB a day from \
         each person; try again tomorrow"
    );
}

#[tokio::test]
async fn text_files_of_every_kind_reach_each_provider_as_named_blocks() {
    let app = TestApp::start(FakeConfig::default()).await;
    let notes = upload(&app, "notes.md", "# Plan\nShip it — soon.".as_bytes()).await;
    let table = upload(&app, "sales.csv", b"month,total\njan,3\n").await;
    let binary = upload(&app, "blob.bin", &[0u8, 159, 146, 150]).await;
    // TSV, JSON, code and HTML are text too (HTML as its text: nothing renders it).
    let tsv = upload(&app, "sales.tsv", b"month\ttotal").await;
    let json_file = upload(&app, "data.json", br#"{"a": 1}"#).await;
    let code = upload(&app, "main.rs", b"fn main() {}").await;
    let html = upload(&app, "page.html", b"<p>hi</p>").await;
    let files = [
        notes.id,
        table.id,
        binary.id,
        tsv.id,
        json_file.id,
        code.id,
        html.id,
    ];
    let expected = "Summarise these\n\n<file name=\"notes.md\">\n# Plan\nShip it — soon.\n</file>\
                    \n\n<file name=\"sales.csv\">\nmonth,total\njan,3\n\n</file>\
                    \n\n<file name=\"sales.tsv\">\nmonth\ttotal\n</file>\
                    \n\n<file name=\"data.json\">\n{\"a\": 1}\n</file>\
                    \n\n<file name=\"main.rs\">\nfn main() {}\n</file>\
                    \n\n<file name=\"page.html\">\n<p>hi</p>\n</file>";
    for model in EACH_PROVIDER {
        let body = asked_with(&app, "Summarise these", model, &files).await;
        assert_eq!(user_text(&body, model), expected, "{model}: {body}");
    }
    // A later turn sends the earlier question with its files again.
    app.fake.reset_log();
    let first = send_with(&app, None, "Read this", None, &[notes.id]).await;
    let conversation = conversation_of(&first);
    send_with(&app, Some(conversation), "And again?", None, &[]).await;
    let requests = app.fake.requests();
    let body = requests.last().expect("asked");
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .is_some_and(|t| t.contains("<file name=\"notes.md\">")),
        "{body}"
    );
}

#[tokio::test]
async fn a_purge_deletes_the_files_nobody_else_carries() {
    let app = TestApp::start(FakeConfig::default()).await;
    let first = upload(&app, "a.txt", b"shared words").await;
    let second = upload(&app, "b.txt", b"shared words").await;
    let only = upload(&app, "c.txt", b"only in the first").await;
    let one = conversation_of(&send_with(&app, None, "one", None, &[first.id, only.id]).await);
    let two = conversation_of(&send_with(&app, None, "two", None, &[second.id]).await);
    assert_eq!(app.count("blobs").await, 2);

    let app = &app;
    let purge = || async move {
        rill::server::db::purge_deleted(&app.state.db, rill::server::db::now_ms() + 1)
            .await
            .expect("purge")
    };
    let delete = |id: Uuid| async move {
        let response = app
            .post_json("delete_conversation", json!({"id": id}))
            .await;
        assert_eq!(response.status(), 200);
    };
    delete(one).await;
    purge().await;
    // The first conversation's files went; the words the second still carries stay.
    assert_eq!(app.count("attachments").await, 1);
    assert_eq!(app.count("blobs").await, 1);
    assert_eq!(download(app, first.id).await.status(), 404);
    assert_eq!(download(app, only.id).await.status(), 404);
    let kept = download(app, second.id).await;
    assert_eq!(kept.text().await.expect("text"), "shared words");

    delete(two).await;
    purge().await;
    assert_eq!(app.count("attachments").await, 0);
    assert_eq!(app.count("blobs").await, 0);
    assert_eq!(app.count("blob_chunks").await, 0);
    assert_eq!(app.count("turn_attachments").await, 0);

    // Uploads never sent go after a day, with their bytes.
    upload(app, "draft.txt", b"never sent").await;
    let gone = rill::server::db::attachments::delete_unsent(&app.state.db, i64::MAX)
        .await
        .expect("sweep");
    assert_eq!(gone, 1);
    assert_eq!(app.count("blobs").await, 0);
}

#[tokio::test]
async fn images_reach_each_provider_in_its_own_format_beside_the_files() {
    let app = TestApp::start(FakeConfig::default()).await;
    let shot = upload(&app, "error.png", &png(30, 20)).await;
    let notes = upload(&app, "log.txt", b"panic at line 3").await;
    let stored = download(&app, shot.id).await.bytes().await.expect("bytes");
    let data = base64(&stored);
    let text = "What went wrong?\n\n<file name=\"log.txt\">\npanic at line 3\n</file>";
    for model in EACH_PROVIDER {
        let body = &asked_with(&app, "What went wrong?", model, &[shot.id, notes.id]).await;
        match model {
            "fake/fake-model" => assert_eq!(
                body["messages"][0]["content"],
                json!([
                    {"type": "text", "text": text},
                    {"type": "image_url",
                     "image_url": {"url": format!("data:image/png;base64,{data}")}},
                ]),
                "{body}"
            ),
            "claude/claude-fake" => assert_eq!(
                body["messages"][0]["content"],
                json!([
                    {"type": "image",
                     "source": {"type": "base64", "media_type": "image/png", "data": data}},
                    {"type": "text", "text": text},
                ]),
                "{body}"
            ),
            _ => assert_eq!(
                body["contents"][0]["parts"],
                json!([
                    {"inline_data": {"mime_type": "image/png", "data": data}},
                    {"text": text},
                ]),
                "{body}"
            ),
        }
    }
}

#[tokio::test]
async fn a_model_that_cannot_see_is_never_sent_an_image() {
    let app = TestApp::with(Setup {
        prices: vec![(
            "fake/fake-model".into(),
            rill::server::pricing::PriceEntry {
                images: Some(false),
                ..FAKE_PRICE.into()
            },
        )],
        ..Setup::default()
    })
    .await;
    // The picker says which models see, before anything is sent.
    let menu: rill::model::ModelMenu = app
        .post_json("list_models", json!({}))
        .await
        .json()
        .await
        .expect("the menu");
    let notes: Vec<(&str, Option<&str>)> = menu
        .groups
        .iter()
        .flat_map(|g| &g.models)
        .map(|m| (m.id.as_str(), m.note.as_deref()))
        .collect();
    assert_eq!(
        notes,
        [
            ("fake/fake-model", Some("cannot see images")),
            ("claude/claude-fake", None),
            ("gemini/gemini-fake", None),
        ]
    );
    let shot = upload(&app, "shot.png", &png(10, 10)).await;
    let events = send_with(
        &app,
        None,
        "What is this?",
        Some("fake/fake-model"),
        &[shot.id],
    )
    .await;
    let outcome = finished(&events);
    assert_eq!(outcome.status, rill::model::MessageStatus::Failed);
    assert_eq!(
        outcome.error.as_deref(),
        Some(
            "fake/fake-model cannot see images; pick a model that can (the picker marks those that \
             cannot), or send the message without its images"
        )
    );
    assert!(app.fake.requests().is_empty(), "nothing was sent");
    // A model that sees takes the same conversation on; going back to the blind one, the
    // earlier image is left out with a note rather than refusing every later message.
    let conversation = conversation_of(&events);
    let seen = send_with(
        &app,
        Some(conversation),
        "And now?",
        Some("claude/claude-fake"),
        &[],
    )
    .await;
    assert_eq!(finished(&seen).status, rill::model::MessageStatus::Complete);
    app.fake.reset_log();
    let blind = send_with(
        &app,
        Some(conversation),
        "Thanks",
        Some("fake/fake-model"),
        &[],
    )
    .await;
    assert_eq!(
        finished(&blind).status,
        rill::model::MessageStatus::Complete
    );
    let requests = app.fake.requests();
    let first = &requests.last().expect("asked")["messages"][0]["content"];
    assert!(
        // The first question's reply failed, so it is joined with the next question.
        first.as_str().is_some_and(|t| t.starts_with(
            "What is this?\n\n[1 image(s) attached here are not shown: this model cannot see \
             images]\n\nAnd now?"
        )),
        "{first}"
    );
}

#[tokio::test]
async fn images_are_scaled_stripped_of_metadata_and_bounded_when_decoded() {
    let app = TestApp::start(FakeConfig::default()).await;
    // A photo with EXIF (an APP1 segment right after the start of the JPEG) and 3,000 px wide.
    let photo = picture(3000, 1000, image::ImageFormat::Jpeg);
    let mut with_exif = photo[..2].to_vec();
    let exif = b"Exif\0\0MM\0*\0\0\0\x08\0\0GPS-SECRET";
    with_exif.extend_from_slice(&[0xFF, 0xE1]);
    with_exif.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    with_exif.extend_from_slice(exif);
    with_exif.extend_from_slice(&photo[2..]);
    let stored = upload(&app, "photo.jpg", &with_exif).await;
    assert_eq!(stored.mime, "image/jpeg");
    let bytes = download(&app, stored.id)
        .await
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(dimensions(&bytes), (2048, 683));
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!has(b"Exif") && !has(b"GPS-SECRET"), "the metadata is gone");

    // WebP and GIF are kept as PNG.
    let webp = upload(&app, "a.webp", &picture(5, 5, image::ImageFormat::WebP)).await;
    assert_eq!(
        (webp.kind, webp.mime.as_str()),
        (AttachmentKind::Image, "image/png")
    );
    let gif = upload(&app, "a.gif", &picture(5, 5, image::ImageFormat::Gif)).await;
    assert_eq!(gif.mime, "image/png");

    // A small file that declares 100,000 × 100,000 pixels is refused before it is decoded.
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let refused = upload_with(&app.http, &app.base_url, "bomb.png", &bomb).await;
    assert_eq!(refused.status(), 413);
    assert_eq!(
        error_text(refused).await,
        "the image is too large to open: at most 16384 pixels a side and 256 MB once decoded"
    );
    // A damaged image is refused in words too.
    let damaged = upload_with(
        &app.http,
        &app.base_url,
        "x.png",
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .await;
    assert_eq!(damaged.status(), 400);
    assert_eq!(
        error_text(damaged).await,
        "the image could not be read; it may be damaged"
    );
    assert_eq!(app.count("attachments").await, 3);
}

/// The three providers' fake models, each speaking its own protocol.
const EACH_PROVIDER: [&str; 3] = [
    "fake/fake-model",
    "claude/claude-fake",
    "gemini/gemini-fake",
];

/// Sends `question` with `files` to `model` in a new conversation, expects a complete reply, and
/// gives the body of the request the fake provider received for it.
async fn asked_with(app: &TestApp, question: &str, model: &str, files: &[Uuid]) -> Value {
    app.fake.reset_log();
    let events = send_with(app, None, question, Some(model), files).await;
    assert_eq!(
        finished(&events).status,
        rill::model::MessageStatus::Complete,
        "{model}"
    );
    app.fake
        .requests()
        .last()
        .cloned()
        .expect("the provider was asked")
}

/// The user's text in a request body, whatever its protocol.
fn user_text(body: &Value, model: &str) -> String {
    let text = match model {
        "gemini/gemini-fake" => body["contents"][0]["parts"][0]["text"].clone(),
        _ => body["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == "user"))
            .map(|m| m["content"].clone())
            .unwrap_or_default(),
    };
    text.as_str().unwrap_or_default().to_owned()
}

/// The user's text in the last request the fake provider received.
fn asked_text(app: &TestApp, model: &str) -> String {
    let requests = app.fake.requests();
    user_text(requests.last().expect("the provider was asked"), model)
}

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/it/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the fixture is there")
}

/// A PDF whose objects are `objects` (numbered from 1, the first the catalog), with a correct
/// cross-reference table.
fn pdf(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    let size = objects.len() + 1;
    out.extend(format!("xref\n0 {size}\n0000000000 65535 f \n").bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").bytes());
    }
    out.extend(
        format!("trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").bytes(),
    );
    out
}

fn pdf_stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\nendstream");
    out
}

/// One page of Helvetica whose content stream is `content` (its dictionary's other entries
/// `content_dict`), and `extra` objects after it.
fn one_page_pdf(content_dict: &str, content: &[u8], extra: Vec<Vec<u8>>) -> Vec<u8> {
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
           /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
        pdf_stream(content_dict, content),
    ];
    objects.extend(extra);
    pdf(&objects)
}

/// A zlib stream that inflates to `zeros` zero bytes (a multiple of 258, plus one), in about
/// 13 bits per 258 bytes: one literal, then copies of length 258 at distance 1, in deflate's
/// fixed Huffman codes.
fn zlib_bomb(copies: u64) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }
    impl Bits {
        /// `count` bits of `value`, least significant first (deflate's order for headers).
        fn put(&mut self, value: u32, count: u32) {
            for i in 0..count {
                self.acc |= ((value >> i) & 1) << self.n;
                self.n += 1;
                if self.n == 8 {
                    self.out.push(self.acc as u8);
                    self.acc = 0;
                    self.n = 0;
                }
            }
        }
        /// A Huffman code, most significant bit first.
        fn code(&mut self, code: u32, length: u32) {
            for i in (0..length).rev() {
                self.put((code >> i) & 1, 1);
            }
        }
    }
    let mut bits = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // the last block
    bits.put(1, 2); // fixed codes
    bits.code(0x30, 8); // literal 0
    for _ in 0..copies {
        bits.code(0b1100_0101, 8); // length 258 (symbol 285)
        bits.code(0, 5); // distance 1
    }
    bits.code(0, 7); // end of block
    if bits.n > 0 {
        bits.out.push(bits.acc as u8);
    }
    // Adler-32 of n zero bytes: a = 1, b = n (mod 65521).
    let n = copies * 258 + 1;
    let adler = ((n % 65521) << 16) as u32 | 1;
    bits.out.extend_from_slice(&adler.to_be_bytes());
    bits.out
}

#[tokio::test]
async fn a_pdf_s_text_reaches_each_provider_and_a_scan_says_it_has_none() {
    let app = TestApp::start(FakeConfig::default()).await;
    // Printed by Chromium (Skia): a subset TrueType font with a ToUnicode map, as real PDFs are.
    let report = upload(&app, "report.pdf", &fixture("report.pdf")).await;
    assert_eq!(report.mime, "application/pdf");
    assert_eq!(report.note, None, "its text is all there");
    // Only a picture on the page: no text to read, and the person is told before sending.
    let scan = upload(&app, "scan.pdf", &fixture("scan.pdf")).await;
    assert!(
        scan.note
            .as_deref()
            .is_some_and(|n| n.starts_with("no text in this PDF")),
        "{scan:?}"
    );
    for model in EACH_PROVIDER {
        let body = asked_with(&app, "What did they count?", model, &[report.id, scan.id]).await;
        let text = user_text(&body, model);
        assert!(
            text.starts_with(
                "What did they count?\n\n<file name=\"report.pdf\">\nQuarterly report"
            ),
            "{model}: {text}"
        );
        assert!(
            text.contains("42 blue whales in October."),
            "{model}: {text}"
        );
        assert!(
            text.contains("<file name=\"scan.pdf\">\n[This PDF has no text to read"),
            "{model}: {text}"
        );
    }
    // The PDF itself is kept as it came, a download.
    let served = download(&app, report.id).await;
    assert!(header(&served, "content-disposition").starts_with("attachment;"));
    assert_eq!(
        served.bytes().await.expect("bytes").as_ref(),
        fixture("report.pdf")
    );
}

#[tokio::test]
async fn a_50_mb_pdf_uploads_and_its_text_is_read() {
    let app = TestApp::with(Setup {
        limits: Some(rill::server::config::LimitSettings {
            max_attachment_bytes: 60 << 20,
            max_message_attachment_bytes: 60 << 20,
            ..generous_limits()
        }),
        ..Setup::default()
    })
    .await;
    // 50 MB of an embedded file's bytes (not compressible: a simple generator's output) beside
    // one page of text.
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let padding: Vec<u8> = (0..50 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let big = one_page_pdf(
        "",
        b"BT /F1 12 Tf 72 720 Td (Fifty megabytes, and the words still arrive.) Tj ET",
        vec![pdf_stream("/Type /EmbeddedFile", &padding)],
    );
    drop(padding);
    assert!(big.len() > 50 << 20);
    let file = upload(&app, "big.pdf", &big).await;
    assert_eq!(file.size, big.len() as u64);
    assert_eq!(file.note, None);
    send_with(&app, None, "Read it", None, &[file.id]).await;
    let text = asked_text(&app, "fake/fake-model");
    assert_eq!(
        text,
        "Read it\n\n<file name=\"big.pdf\">\nFifty megabytes, and the words still arrive.\n</file>"
    );
    let served = download(&app, file.id).await;
    assert_eq!(served.bytes().await.expect("bytes").len(), big.len());
}

#[tokio::test]
async fn a_pdf_built_to_blow_up_or_damaged_is_refused_in_words() {
    let app = TestApp::start(FakeConfig::default()).await;
    // 7 MB that inflate to 1 GiB of page content: the reader runs out of its memory, not the
    // server out of its own.
    let bomb = one_page_pdf("/Filter /FlateDecode", &zlib_bomb(4 << 20), Vec::new());
    assert!(bomb.len() < 8 << 20);
    let refused = upload_with(&app.http, &app.base_url, "bomb.pdf", &bomb).await;
    assert_eq!(refused.status(), 413);
    assert_eq!(
        error_text(refused).await,
        "this PDF takes more memory to read than this server allows (a file built to do that, \
         or one far too complex); it was not kept"
    );
    let damaged = upload_with(
        &app.http,
        &app.base_url,
        "torn.pdf",
        b"%PDF-1.7\n1 0 obj <<",
    )
    .await;
    assert_eq!(damaged.status(), 400);
    assert_eq!(
        error_text(damaged).await,
        "this PDF could not be read: it is damaged, or locked with a password"
    );
    assert_eq!(app.count("attachments").await, 0, "neither was kept");
    assert_eq!(app.count("blobs").await, 0);
    // And the server goes on as before.
    let fine = upload(&app, "report.pdf", &fixture("report.pdf")).await;
    assert_eq!(fine.note, None);
}

#[tokio::test]
async fn files_stay_with_continue_regenerate_edit_branches_and_a_switch_of_provider() {
    let app = TestApp::start(FakeConfig {
        tokens: 300,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await;
    let notes = upload(&app, "notes.md", b"# Plan\nShip it.").await;
    let block = "\n\n<file name=\"notes.md\">\n# Plan\nShip it.\n</file>";
    let send = |turn_id: Uuid, conversation: Option<Uuid>, text: &str, extra: Value| {
        let mut request = json!({"turn_id": turn_id, "conversation_id": conversation,
                                 "text": text, "model": null});
        if let (Some(request), Some(extra)) = (request.as_object_mut(), extra.as_object()) {
            request.extend(extra.clone());
        }
        app.post_json("send_message", request)
    };

    // Continue: the question with its file, stopped mid-reply, goes on with the file.
    let q1 = Uuid::new_v4();
    let mut reader =
        EventReader::new(send(q1, None, "Read this", json!({"attachments": [notes.id]})).await);
    let mut events = Vec::new();
    while !events.iter().any(|e: &rill::model::TurnEnvelope| {
        matches!(e.event, rill::model::TurnEvent::Delta { .. })
    }) {
        events.push(reader.next().await.expect("streaming"));
    }
    assert_eq!(app.stop(q1).await.status(), 200);
    events.extend(reader.read_to_end().await);
    let conversation = conversation_of(&events);
    app.fake.set_config(FakeConfig {
        tokens: 6,
        ..FakeConfig::default()
    });
    app.fake.reset_log();
    EventReader::new(app.continue_reply(q1, 1).await)
        .read_to_end()
        .await;
    assert_eq!(
        asked_text(&app, "fake/fake-model"),
        format!("Read this{block}"),
        "continued"
    );

    // Regenerate and Edit: the page sends the question's files again with the new turn.
    for (text, name) in [
        ("Read this", "regenerated"),
        ("Read this, please", "edited"),
    ] {
        app.fake.reset_log();
        let events = EventReader::new(
            send(
                Uuid::new_v4(),
                Some(conversation),
                text,
                json!({"alternative_to": q1, "attachments": [notes.id]}),
            )
            .await,
        )
        .read_to_end()
        .await;
        assert_eq!(
            finished(&events).status,
            rill::model::MessageStatus::Complete
        );
        assert_eq!(
            asked_text(&app, "fake/fake-model"),
            format!("{text}{block}"),
            "{name}"
        );
    }

    // Back on the first branch, each provider in turn gets the earlier question's file.
    let switched = app
        .post_json(
            "switch_branch",
            json!({"conversation_id": conversation, "turn_id": q1}),
        )
        .await;
    assert_eq!(switched.status(), 200);
    for model in ["claude/claude-fake", "gemini/gemini-fake"] {
        app.fake.reset_log();
        let events = send_with(&app, Some(conversation), "And then?", Some(model), &[]).await;
        assert_eq!(
            finished(&events).status,
            rill::model::MessageStatus::Complete
        );
        assert_eq!(
            asked_text(&app, model),
            format!("Read this{block}"),
            "{model}"
        );
    }
}

/// A page of text whose content stream is `operators` text-showing operators: a file that is
/// slow to read (each operator parsed and decoded) but small in memory.
fn slow_pdf(operators: usize) -> Vec<u8> {
    let mut content = b"BT /F1 12 Tf 72 720 Td (Slow words.) Tj ".to_vec();
    for _ in 0..operators {
        content.extend_from_slice(b"(a) Tj ");
    }
    content.extend_from_slice(b"ET");
    one_page_pdf("", &content, Vec::new())
}

#[tokio::test]
async fn a_pdf_read_past_the_time_bound_is_killed_and_refused_in_words() {
    let bounded = |time: std::time::Duration| {
        TestApp::with(Setup {
            limits: Some(rill::server::config::LimitSettings {
                pdf_read_time: time,
                ..generous_limits()
            }),
            ..Setup::default()
        })
    };
    let app = bounded(std::time::Duration::from_millis(300)).await;
    let slow = slow_pdf(600_000);
    let refused = upload_with(&app.http, &app.base_url, "slow.pdf", &slow).await;
    assert_eq!(refused.status(), 413);
    assert_eq!(
        error_text(refused).await,
        "this PDF takes longer to read than the 0.3 seconds this server allows (a file built to \
         do that, or one far too complex); it was not kept"
    );
    assert_eq!(app.count("attachments").await, 0, "nothing was kept");
    assert_eq!(app.count("blobs").await, 0);
    // The reader was killed, not left running: no child of the server reads this file (the
    // reader is told its size) any more.
    let size = slow.len().to_string();
    eventually("the reader is gone", || async { !reader_running(&size) }).await;
    // The same file, given the time (the default bound), is read: time was what it lacked.
    let patient = bounded(std::time::Duration::from_secs(45)).await;
    let read = upload(&patient, "slow.pdf", &slow).await;
    assert_eq!(read.note, None);
}

/// Whether a `read-pdf` child of this process is reading a file of `size` bytes (a zombie not
/// reaped counts).
fn reader_running(size: &str) -> bool {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let parent = stat
                .rsplit(") ")
                .next()
                .and_then(|rest| rest.split(' ').nth(1));
            let command = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = command.split(|b| *b == 0).collect();
            parent == Some(me.as_str())
                && args.get(1) == Some(&&b"read-pdf"[..])
                && args.get(2) == Some(&size.as_bytes())
        })
}

#[tokio::test]
async fn a_pdf_read_past_the_memory_bound_is_refused_in_words() {
    let app = TestApp::with(Setup {
        limits: Some(rill::server::config::LimitSettings {
            pdf_read_memory_bytes: 64 << 20,
            ..generous_limits()
        }),
        ..Setup::default()
    })
    .await;
    // 2 MB that inflate to 256 MB of page content: four times the reader's memory.
    let bomb = one_page_pdf("/Filter /FlateDecode", &zlib_bomb(1 << 20), Vec::new());
    let refused = upload_with(&app.http, &app.base_url, "bomb.pdf", &bomb).await;
    assert_eq!(refused.status(), 413);
    assert_eq!(
        error_text(refused).await,
        "this PDF takes more memory to read than this server allows (a file built to do that, \
         or one far too complex); it was not kept"
    );
    assert_eq!(app.count("blobs").await, 0);
    // A fair file is read within the same bound.
    let fine = upload(&app, "report.pdf", &fixture("report.pdf")).await;
    assert_eq!(fine.note, None);
}

#[tokio::test]
async fn files_are_fitted_whole_with_their_question_or_left_out_with_it() {
    // The fake's model has a 1,000-token window; a byte counts as a third of a token.
    let app = TestApp::start(FakeConfig {
        tokens: 5,
        context_tokens: Some(1_000),
        ..FakeConfig::default()
    })
    .await;
    let lines = |word: &str| format!("{word} line of the file\n").repeat(40);
    let (first, second) = (lines("first"), lines("second"));
    let a = upload(&app, "first.txt", first.as_bytes()).await;
    let b = upload(&app, "second.txt", second.as_bytes()).await;
    let events = send_with(&app, None, "First", None, &[a.id]).await;
    assert_eq!(finished(&events).left_out, 0);
    let conversation = conversation_of(&events);
    // Two such questions do not fit: the older one goes, its file with it, and the newest
    // goes whole.
    let events = send_with(&app, Some(conversation), "Second", None, &[b.id]).await;
    let outcome = finished(&events);
    assert_eq!(outcome.status, rill::model::MessageStatus::Complete);
    assert_eq!(outcome.left_out, 2, "the first question and its reply");
    let requests = app.fake.requests();
    let sent = requests.last().expect("asked")["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["content"],
        format!("Second\n\n<file name=\"second.txt\">\n{second}\n</file>")
    );
    // A file too large for the window with its question is refused in words, not cut.
    let asked = requests.len();
    let huge = upload(&app, "huge.txt", lines("huge").repeat(4).as_bytes()).await;
    let events = send_with(&app, Some(conversation), "Third", None, &[huge.id]).await;
    let outcome = finished(&events);
    assert_eq!(outcome.status, rill::model::MessageStatus::Failed);
    let error = outcome.error.clone().unwrap_or_default();
    assert!(error.contains("too long for fake/fake-model"), "{error}");
    assert_eq!(app.fake.requests().len(), asked, "nothing was sent");
}

#[tokio::test]
async fn a_budget_reserves_for_the_images_and_files_a_question_carries() {
    // $100 per million input tokens and $2,000 per million output, replies of at most 100
    // tokens: a reply reserves $0.20, a byte of the prompt $0.0001, an image (2,400 tokens)
    // $0.24.
    let app = TestApp::with(Setup {
        access: accounts_mode(),
        fake: FakeConfig {
            tokens: 5,
            ..FakeConfig::default()
        },
        turns: Some(rill::server::config::TurnSettings {
            max_output_tokens: 100,
            ..test_turns()
        }),
        prices: vec![(
            "fake/fake-model".to_owned(),
            rill::model::Price {
                input: 100.0,
                cached_input: None,
                cache_write: None,
                output: 2_000.0,
            }
            .into(),
        )],
        ..Setup::default()
    })
    .await;
    // Each asks once with $0.40 to spend.
    let ask = |name: &'static str, file: Option<(&'static str, Vec<u8>)>| {
        let app = &app;
        async move {
            let id = app.add_user(name, false).await;
            sql("UPDATE users SET monthly_budget_usd = 0.40 WHERE id = $1")
                .bind(&id)
                .execute(&app.state.db)
                .await;
            let person = app.signed_in(name).await;
            let mut files = Vec::new();
            if let Some((file_name, bytes)) = file {
                let response = upload_with(&person.http, &person.base_url, file_name, &bytes).await;
                assert_eq!(response.status(), 200);
                files.push(response.json::<AttachmentView>().await.expect("a file").id);
            }
            let sent = person
                .post(
                    "send_message",
                    json!({"turn_id": Uuid::new_v4(), "conversation_id": null, "text": "Look",
                           "model": null, "attachments": files}),
                )
                .await;
            assert_eq!(sent.status(), 200);
            finished(&EventReader::new(sent).read_to_end().await).clone()
        }
    };
    let refused = |outcome: &rill::model::Outcome| {
        outcome.status == rill::model::MessageStatus::Failed
            && outcome
                .error
                .as_deref()
                .is_some_and(|e| e.contains("budget of $0.40"))
    };
    // The question alone: about $0.20.
    let plain = ask("ann", None).await;
    assert_eq!(plain.status, rill::model::MessageStatus::Complete);
    // With a small image: $0.24 more, past the budget.
    let image = ask("ben", Some(("shot.png", png(8, 8)))).await;
    assert!(refused(&image), "{image:?}");
    // With 1,000 bytes of text: about $0.10 more, within it; 2,500: past it.
    let small = ask("cat", Some(("a.txt", vec![b'a'; 1_000]))).await;
    assert_eq!(small.status, rill::model::MessageStatus::Complete);
    let large = ask("dov", Some(("b.txt", vec![b'b'; 2_500]))).await;
    assert!(refused(&large), "{large:?}");
    assert_eq!(app.fake.calls().len(), 2, "the refused were never sent");
}

#[tokio::test]
async fn each_question_of_a_conversation_keeps_its_own_files_in_the_prompt_and_on_the_page() {
    let app = TestApp::start(FakeConfig {
        tokens: 3,
        ..FakeConfig::default()
    })
    .await;
    let a = upload(&app, "a.md", b"alpha").await;
    let b = upload(&app, "b.md", b"bravo").await;
    let c = upload(&app, "c.md", b"charlie").await;
    let block = |name: &str, text: &str| format!("\n\n<file name=\"{name}\">\n{text}\n</file>");
    let events = send_with(&app, None, "first", None, &[a.id]).await;
    let conversation = conversation_of(&events);
    send_with(&app, Some(conversation), "second", None, &[]).await;
    send_with(&app, Some(conversation), "third", None, &[c.id, b.id]).await;
    app.fake.reset_log();
    send_with(&app, Some(conversation), "fourth", None, &[]).await;
    // The prompt: every question with its own files, in the order they were attached.
    let requests = app.fake.requests();
    let asked: Vec<String> = requests.last().expect("the provider was asked")["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        asked,
        vec![
            format!("first{}", block("a.md", "alpha")),
            "second".to_owned(),
            format!(
                "third{}{}",
                block("c.md", "charlie"),
                block("b.md", "bravo")
            ),
            "fourth".to_owned(),
        ]
    );
    // The page: each question shows its own.
    let response = app
        .post_json("get_conversation", json!({"id": conversation}))
        .await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.expect("a conversation");
    let shown: Vec<(String, Vec<String>)> = view["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| {
            let names = m["attachments"].as_array().map_or(Vec::new(), |files| {
                files
                    .iter()
                    .map(|f| f["name"].as_str().unwrap_or_default().to_owned())
                    .collect()
            });
            (m["content"].as_str().unwrap_or_default().to_owned(), names)
        })
        .collect();
    let expected: Vec<(String, Vec<String>)> = vec![
        ("first".into(), vec!["a.md".into()]),
        ("second".into(), vec![]),
        ("third".into(), vec!["c.md".into(), "b.md".into()]),
        ("fourth".into(), vec![]),
    ];
    assert_eq!(shown, expected);
}
