//! Reading an upload as it lies on disk, a conversation at a time, on a blocking thread: a JSON
//! array (ChatGPT's and Claude's `conversations.json`), JSON objects one after another (Rill's
//! conversations, one per line, or one alone), or a zip archive holding either (ChatGPT's
//! `conversations-000.json`, `-001.json`, … in order; Rill's `conversations.jsonl`). Memory holds
//! one conversation at a time: each is at most [`MAX_CONVERSATION_BYTES`] of JSON, and all the
//! JSON read out of an archive at most a multiple of the upload's limit (a zip bomb ends there),
//! and an archive's list of files is measured before it is read (`central_directory`).

use std::cell::Cell;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::rc::Rc;

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

use super::central_directory;
use super::convert::{checked, ConvertError};
use super::files::{extract_files, Extracted, FileBounds, Positioned};
use super::{chatgpt, claude};
use crate::server::export_format::{self as format, Conversation};

/// Bytes of JSON one conversation may take.
pub const MAX_CONVERSATION_BYTES: u64 = 16 << 20;
/// What an archive may unpack to, as a multiple of what an upload may be.
const UNPACKED_PER_UPLOADED: u64 = 8;

/// What reading gives the importer, in order.
#[derive(Debug)]
pub enum Item {
    /// What the upload is, in words ("a zip archive with conversations.json"), first.
    Format(String),
    /// A conversation fit to store, where it came from (`chatgpt:<id>`), and the files its
    /// questions carry (each once, checked against its SHA-256).
    Conversation(Box<Conversation>, String, Vec<Extracted>),
    /// A conversation left out, and why (naming it and its place in the file).
    Skipped(String),
}

/// Why reading stopped before the end: the file is not what it should be (in words naming
/// where), or the importer stopped listening.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Unreadable(String),
    #[error("the import was stopped")]
    Stopped,
}

/// Takes out the files a conversation names (an archive's), or says why not.
type FilesOf<'a> = dyn FnMut(&Conversation) -> Result<Vec<Extracted>, String> + 'a;

/// Reads `file` (an upload of at most `uploaded_limit` bytes), giving each item to `emit`,
/// which says whether to go on; files a conversation carries are taken out within `bounds`.
pub fn read_upload(
    mut file: std::fs::File,
    uploaded_limit: u64,
    bounds: &FileBounds,
    emit: &mut dyn FnMut(Item) -> bool,
) -> Result<(), ReadError> {
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut file, &mut magic)?;
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    if got == 4 && magic == *b"PK\x03\x04" {
        return read_zip(
            file,
            uploaded_limit.saturating_mul(UNPACKED_PER_UPLOADED),
            bounds,
            emit,
        );
    }
    if got >= 2 && magic[..2] == *b"PK" {
        return Err(ReadError::Unreadable(
            "the file looks like a zip archive but does not start as one (is it whole?)".into(),
        ));
    }
    if !emit(Item::Format("a JSON file".into())) {
        return Err(ReadError::Stopped);
    }
    // A lone JSON file has nothing beside it: a conversation that carried files is left out
    // (its files would be lost), in words saying where they are.
    let mut no_files = |_: &Conversation| {
        Err("its files are not in this file: import the zip export, which holds them".to_owned())
    };
    read_json(
        "the file",
        BufReader::new(file),
        u64::MAX,
        &mut no_files,
        emit,
    )
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> Result<usize, ReadError> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]).map_err(io_error)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn io_error(error: std::io::Error) -> ReadError {
    tracing::error!("reading an import's temporary file: {error}");
    ReadError::Unreadable("the upload could not be read back".into())
}

/// The conversation files of an archive, in the order they are read.
fn conversation_files(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut chosen: Vec<String> = names
        .filter(|name| {
            let base = name.rsplit('/').next().unwrap_or(name);
            base == "conversations.json"
                || base == "conversations.jsonl"
                || base
                    .strip_prefix("conversations-")
                    .and_then(|rest| rest.strip_suffix(".json"))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    chosen.sort();
    chosen
}

fn read_zip(
    mut file: std::fs::File,
    unpacked_limit: u64,
    bounds: &FileBounds,
    emit: &mut dyn FnMut(Item) -> bool,
) -> Result<(), ReadError> {
    central_directory::check(&mut file).map_err(|e| ReadError::Unreadable(e.to_string()))?;
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let mut archive = zip::ZipArchive::new(Positioned::new(file))
        .map_err(|e| ReadError::Unreadable(format!("the zip archive cannot be read: {e}")))?;
    let files = conversation_files(archive.file_names().map(str::to_owned));
    if files.is_empty() {
        return Err(ReadError::Unreadable(
            "the zip archive holds no conversations.json (nor conversations-000.json, … or \
             conversations.jsonl): is it a ChatGPT, Claude or Rill export?"
                .into(),
        ));
    }
    let named = files.join(", ");
    if !emit(Item::Format(format!("a zip archive with {named}"))) {
        return Err(ReadError::Stopped);
    }
    // The files beside the conversations are read through a second reader of the archive (its
    // list shared), while the first is inside conversations.jsonl; they count against the same
    // allowance of unpacked bytes, of their own.
    let mut beside = archive.clone();
    let mut files_left = unpacked_limit;
    let mut files_of = |conversation: &Conversation| {
        extract_files(&mut beside, conversation, bounds, &mut files_left)
    };
    let mut unpacked_left = unpacked_limit;
    for name in files {
        let entry = archive.by_name(&name).map_err(|e| {
            ReadError::Unreadable(format!("{name} in the zip archive cannot be read: {e}"))
        })?;
        let before = unpacked_left;
        let mut counted = Counted {
            inner: BufReader::new(entry),
            left: unpacked_left,
        };
        read_json(&name, &mut counted, unpacked_left, &mut files_of, emit)?;
        unpacked_left = counted.left;
        if unpacked_left == 0 && before > 0 {
            return Err(ReadError::Unreadable(format!(
                "{name} unpacks to more than this server takes from one import"
            )));
        }
    }
    Ok(())
}

/// A reader that stops (an error) after `left` bytes: what an archive may still unpack to.
struct Counted<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("unpacked past the limit"));
        }
        let n = self.inner.read(buf)?;
        self.left = self
            .left
            .saturating_sub(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.left == 0 {
            return Err(std::io::Error::other("unpacked past the limit"));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.left = self
            .left
            .saturating_sub(u64::try_from(amount).unwrap_or(u64::MAX));
        self.inner.consume(amount);
    }
}

/// A reader that errs once the conversation being read passes [`MAX_CONVERSATION_BYTES`]; the
/// count starts again at each conversation.
struct PerItem<R> {
    inner: R,
    used: Rc<Cell<u64>>,
    tripped: Rc<Cell<bool>>,
}

impl<R: Read> Read for PerItem<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let used = self
            .used
            .get()
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        self.used.set(used);
        if used > MAX_CONVERSATION_BYTES {
            self.tripped.set(true);
            return Err(std::io::Error::other("conversation too large"));
        }
        Ok(n)
    }
}

/// Reads one JSON file (`name` for the person): an array of conversations, or objects one
/// after another.
fn read_json<R: BufRead>(
    name: &str,
    mut reader: R,
    unpacked_limit: u64,
    files_of: &mut FilesOf,
    emit: &mut dyn FnMut(Item) -> bool,
) -> Result<(), ReadError> {
    // The first character says which: `[` an array, `{` objects (a UTF-8 BOM and spaces first
    // are allowed).
    let first = loop {
        let buf = reader
            .fill_buf()
            .map_err(|e| unreadable(name, 0, &e.to_string()))?;
        let Some(&byte) = buf.first() else {
            return Err(ReadError::Unreadable(format!("{name} is empty")));
        };
        if byte.is_ascii_whitespace() {
            reader.consume(1);
        } else if buf.starts_with(b"\xEF\xBB\xBF") {
            reader.consume(3);
        } else {
            break byte;
        }
    };
    let used = Rc::new(Cell::new(0));
    let tripped = Rc::new(Cell::new(false));
    let limited = PerItem {
        inner: reader,
        used: used.clone(),
        tripped: tripped.clone(),
    };
    let mut count = 0usize;
    let mut stopped = false;
    let mut each = |value: Value| -> bool {
        count += 1;
        let go_on = emit(item(name, count, value, files_of));
        stopped = !go_on;
        go_on
    };
    let result = match first {
        b'[' => {
            let mut deserializer = serde_json::Deserializer::from_reader(limited);
            let seed = Each {
                each: &mut each,
                used: used.clone(),
            };
            seed.deserialize(&mut deserializer)
                .and_then(|()| deserializer.end())
        }
        b'{' => {
            let mut values = serde_json::Deserializer::from_reader(limited).into_iter::<Value>();
            loop {
                used.set(0);
                match values.next() {
                    None => break Ok(()),
                    Some(Ok(value)) => {
                        if !each(value) {
                            break Ok(());
                        }
                    }
                    Some(Err(e)) => break Err(e),
                }
            }
        }
        other => {
            return Err(ReadError::Unreadable(format!(
                "{name} is not JSON: it starts with {:?} where a [ or {{ was expected",
                char::from(other)
            )))
        }
    };
    if stopped {
        return Err(ReadError::Stopped);
    }
    match result {
        Ok(()) => Ok(()),
        Err(_) if tripped.get() => Err(ReadError::Unreadable(format!(
            "{name}: conversation {} is larger than the {} MB Rill imports at once",
            count + 1,
            MAX_CONVERSATION_BYTES >> 20
        ))),
        Err(e) if e.is_io() && unpacked_limit != u64::MAX => Err(ReadError::Unreadable(format!(
            "{name} unpacks to more than this server takes from one import"
        ))),
        Err(e) => Err(unreadable(name, count + 1, &e.to_string())),
    }
}

fn unreadable(name: &str, conversation: usize, error: &str) -> ReadError {
    let place = if conversation > 0 {
        format!(", in conversation {conversation}")
    } else {
        String::new()
    };
    ReadError::Unreadable(format!("{name} is not valid JSON{place}: {error}"))
}

/// One value of a file as an item: a conversation fit to store, or why it is left out.
fn item(file: &str, number: usize, value: Value, files_of: &mut FilesOf) -> Item {
    let title: String = ["title", "name"]
        .iter()
        .find_map(|k| value.get(*k).and_then(Value::as_str))
        .map(|t| t.chars().take(60).collect())
        .unwrap_or_default();
    let named = || {
        if title.is_empty() {
            String::new()
        } else {
            format!(" (“{title}”)")
        }
    };
    match convert(value) {
        Ok((conversation, source)) => {
            let files = if conversation.distinct_files().is_empty() {
                Ok(Vec::new())
            } else {
                files_of(&conversation)
            };
            match files {
                Ok(files) => Item::Conversation(Box::new(conversation), source, files),
                Err(error) => {
                    Item::Skipped(format!("{file}, conversation {number}{}: {error}", named()))
                }
            }
        }
        Err(error) => Item::Skipped(format!("{file}, conversation {number}{}: {error}", named())),
    }
}

/// A conversation of any known source in Rill's format, checked, and its source key.
fn convert(value: Value) -> Result<(Conversation, String), ConvertError> {
    if !value.is_object() {
        return Err(ConvertError::Invalid(
            "it is not an object (a conversation is written {…})".into(),
        ));
    }
    let (conversation, source) = if chatgpt::recognises(&value) {
        let c = chatgpt::convert(value)?;
        let source = format!("chatgpt:{}", c.id);
        (c, source)
    } else if claude::recognises(&value) {
        let c = claude::convert(value)?;
        let source = format!("claude:{}", c.id);
        (c, source)
    } else if value.get("format").and_then(Value::as_str) == Some(format::FORMAT) {
        let version = value.get("version").and_then(Value::as_u64).unwrap_or(0);
        if version > u64::from(format::VERSION) {
            return Err(ConvertError::Invalid(format!(
                "it was exported by a newer Rill (format version {version}; this one reads {})",
                format::VERSION
            )));
        }
        let c: Conversation = serde_json::from_value(value).map_err(ConvertError::shape)?;
        let source = format!("rill:{}", c.id);
        (c, source)
    } else {
        return Err(ConvertError::Invalid(
            "it is not a conversation of ChatGPT (no `mapping`), Claude (no `chat_messages`) or \
             Rill (no `format`)"
                .into(),
        ));
    };
    Ok((checked(conversation)?, source))
}

/// The array's elements, one at a time, each handed on as soon as it is read.
struct Each<'a> {
    each: &'a mut dyn FnMut(Value) -> bool,
    used: Rc<Cell<u64>>,
}

impl<'de> DeserializeSeed<'de> for Each<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Each<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of conversations")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            self.used.set(0);
            match seq.next_element::<Value>()? {
                None => return Ok(()),
                Some(value) => {
                    if !(self.each)(value) {
                        // The importer has gone: the rest is not read.
                        return Err(serde::de::Error::custom("stopped"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_is_read_for_its_conversation_files_in_order() {
        let names = [
            "chat.html",
            "conversations-001.json",
            "conversations-000.json",
            "user.json",
            "file-abc.png",
            "conversations-x.json",
        ];
        assert_eq!(
            conversation_files(names.iter().map(|n| (*n).to_owned())),
            ["conversations-000.json", "conversations-001.json"]
        );
    }
}
