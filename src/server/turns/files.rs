//! What a question's files add to its prompt. Text files go into the question's text as blocks
//! with their names, so the prompt fitter measures them like any text (the whole question, files
//! and all, is sent or left out: never half a file) and the budget's worst case counts their
//! bytes. Images go beside the text, in base64 as every provider takes them, each counted as
//! `turns::prompt::IMAGE_TOKENS`. A PDF goes as the text read from it when it was uploaded
//! (`attachments/pdf.rs`), or a note that it has none.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use uuid::Uuid;

use crate::model::attachments::AttachmentKind;
use crate::model::{MessageView, Role};
use crate::server::db::{self, Db, DbError, Owner};

/// Adds each question's text files to its text, in the order they were attached; returns the
/// images each question carries, by message id.
pub async fn add_files(
    db: &Db,
    owner: &Owner,
    messages: &mut [MessageView],
) -> Result<HashMap<Uuid, Vec<llm::Image>>, DbError> {
    let mut images: HashMap<Uuid, Vec<llm::Image>> = HashMap::new();
    let questions: Vec<Uuid> = messages
        .iter()
        .filter(|m| m.role == Role::User)
        .map(|m| m.turn_id)
        .collect();
    let mut carried = db::attachments::turns_attachments(db, owner, &questions).await?;
    for message in messages.iter_mut().filter(|m| m.role == Role::User) {
        let files = carried.remove(&message.turn_id).unwrap_or_default();
        for file in files {
            match file.view.kind {
                AttachmentKind::Text => {
                    let bytes = db::attachments::blob_bytes(db, owner, &file.sha256).await?;
                    // Stored as text only when it was UTF-8 throughout.
                    let text = String::from_utf8_lossy(&bytes);
                    message
                        .content
                        .push_str(&text_block(&file.view.name, &text));
                }
                AttachmentKind::Image => {
                    let bytes = db::attachments::blob_bytes(db, owner, &file.sha256).await?;
                    let base64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                    images.entry(message.id).or_default().push(llm::Image {
                        mime: file.view.mime,
                        base64: Arc::from(base64),
                    });
                }
                AttachmentKind::File => {
                    let Some((text, cut)) =
                        db::attachments::pdf_text(db, owner, &file.sha256).await?
                    else {
                        continue;
                    };
                    message
                        .content
                        .push_str(&text_block(&file.view.name, &pdf_text(&text, cut)));
                }
            }
        }
    }
    Ok(images)
}

/// A file as the model reads it: its name, then its text, fenced so that where it ends is plain.
pub fn text_block(name: &str, text: &str) -> String {
    let name = name.replace('"', "'");
    format!("\n\n<file name=\"{name}\">\n{text}\n</file>")
}

/// A PDF's text as the model reads it, with a note where there is none or it was cut.
fn pdf_text(text: &str, cut: bool) -> String {
    if text.is_empty() {
        return "[This PDF has no text to read: its pages are probably scanned images. Say so if \
                the question needs its contents.]"
            .into();
    }
    if cut {
        return format!("{text}\n[The PDF's text goes on; only this much of it was kept.]");
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::{pdf_text, text_block};

    #[test]
    fn a_pdf_without_text_or_cut_says_so() {
        assert!(pdf_text("", false).contains("no text to read"));
        assert!(pdf_text("abc", true).starts_with("abc\n[The PDF's text goes on"));
        assert_eq!(pdf_text("abc", false), "abc");
    }

    #[test]
    fn a_file_is_named_and_fenced() {
        assert_eq!(
            text_block("say \"hi\".md", "# Hi"),
            "\n\n<file name=\"say 'hi'.md\">\n# Hi\n</file>"
        );
    }
}
