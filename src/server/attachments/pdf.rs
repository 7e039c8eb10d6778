//! A PDF's text, read when it is uploaded, by a child process: this same binary run as
//! `rill read-pdf` (see `worker`). A PDF reader decompresses streams whole (a 1 MB file can
//! inflate to gigabytes) and a hostile file can keep a parser busy, so no PDF is parsed inside the
//! server: the child gets the file on its standard input, a memory limit (`RLIMIT_DATA`) and a CPU
//! limit it sets on itself before reading a byte, and is killed when its time is up
//! ([`Bounds`], from `RILL_PDF_READ_SECONDS` and `RILL_PDF_READ_MB`). Whatever a file does, the
//! server loses one child process and answers in words that say which bound it passed. The server's own memory is
//! untouched: the file goes from the spooled upload to the child's stdin as a file descriptor, and
//! only the text (at most [`MAX_TEXT_BYTES`]) comes back.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::model::attachments::MAX_PDF_TEXT_BYTES;

/// The command-line word that makes the binary a PDF reader (not in the usage text: the server
/// runs it, people do not).
pub const COMMAND: &str = "read-pdf";

/// Most bytes of text kept from one PDF ([`MAX_PDF_TEXT_BYTES`]).
const MAX_TEXT_BYTES: usize = MAX_PDF_TEXT_BYTES as usize;

/// What one reader may take. The default memory (768 MiB) holds the file (within the upload
/// limit) and its parsed objects many times over; a decompression bomb does not.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Its heap (`RLIMIT_DATA`).
    pub memory_bytes: u64,
    /// After this the reader is killed, whatever it is doing. Its CPU time is bounded at two
    /// thirds of it (at least a second): a busy machine still lets a fair file finish.
    pub wall: Duration,
}

impl Bounds {
    pub fn of(limits: &crate::server::config::LimitSettings) -> Self {
        Self {
            memory_bytes: limits.pdf_read_memory_bytes,
            wall: limits.pdf_read_time,
        }
    }

    fn cpu_seconds(&self) -> u64 {
        (self.wall.as_secs().saturating_mul(2) / 3).max(1)
    }
}

const EXIT_WHOLE: u8 = 0;
const EXIT_CUT: u8 = 10;
const EXIT_UNREADABLE: u8 = 11;
/// Panics (a malformed file the parser did not expect) exit with 101.
const EXIT_PANIC: i32 = 101;

static READER: OnceLock<PathBuf> = OnceLock::new();

/// Runs `program` as the reader instead of this process's own binary (the integration tests run
/// inside the test binary, which is not `rill`). The first call wins.
pub fn use_reader(program: PathBuf) {
    let _ = READER.set(program);
}

/// A PDF's text as it is stored: empty when the file has none (a scan).
#[derive(Debug, PartialEq)]
pub struct PdfText {
    pub text: String,
    /// The text went on past [`MAX_TEXT_BYTES`].
    pub cut: bool,
}

/// Why a PDF was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("this PDF could not be read: it is damaged, or locked with a password")]
    Unreadable,
    #[error(
        "this PDF takes more memory to read than this server allows (a file built to do that, \
         or one far too complex); it was not kept"
    )]
    TooLarge,
    #[error(
        "this PDF takes longer to read than the {} this server allows (a file built to do \
         that, or one far too complex); it was not kept",
        seconds(*.0)
    )]
    TooSlow(Duration),
    /// The reader could not be run at all (the server's fault, logged).
    #[error("the PDF reader could not be started: {0}")]
    Start(std::io::Error),
}

/// A time bound in words: "45 seconds", "1 second", "0.2 seconds".
fn seconds(bound: Duration) -> String {
    let whole = bound.as_secs();
    match (whole, bound.subsec_millis()) {
        (1, 0) => "1 second".to_owned(),
        (n, 0) => format!("{n} seconds"),
        _ => format!("{} seconds", crate::format::fixed(bound.as_secs_f64(), 1)),
    }
}

/// Reads the text of the PDF in `file` (at its start, at most `max_bytes` long) in a child
/// process within `bounds`.
pub async fn read_text(
    file: std::fs::File,
    max_bytes: u64,
    bounds: Bounds,
) -> Result<PdfText, PdfError> {
    let program = match READER.get() {
        Some(program) => program.clone(),
        None => std::env::current_exe().map_err(PdfError::Start)?,
    };
    let mut child = tokio::process::Command::new(program)
        .arg(COMMAND)
        .arg(max_bytes.to_string())
        .arg(bounds.memory_bytes.to_string())
        .arg(bounds.cpu_seconds().to_string())
        // The reader needs no setting, so it is shown none (no keys, no paths).
        .env_clear()
        .stdin(Stdio::from(file))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(PdfError::Start)?;
    let Some(stdout) = child.stdout.take() else {
        return Err(PdfError::Start(std::io::Error::other("no standard output")));
    };
    let run = async {
        let mut text = Vec::new();
        // One byte more than the reader ever writes: a reader that wrote more is not believed.
        let wanted = u64::try_from(MAX_TEXT_BYTES)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        stdout.take(wanted).read_to_end(&mut text).await?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((text, status))
    };
    let (text, status) = match tokio::time::timeout(bounds.wall, run).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            tracing::warn!("reading a PDF's text: {e}");
            return Err(PdfError::TooLarge);
        }
        Err(_) => {
            // Killed and reaped here (`kill_on_drop` would only kill it).
            let _ = child.kill().await;
            return Err(PdfError::TooSlow(bounds.wall));
        }
    };
    if text.len() > MAX_TEXT_BYTES {
        return Err(PdfError::TooLarge);
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    match status.code() {
        Some(code) if code == i32::from(EXIT_WHOLE) => Ok(PdfText { text, cut: false }),
        Some(code) if code == i32::from(EXIT_CUT) => Ok(PdfText { text, cut: true }),
        Some(code) if code == i32::from(EXIT_UNREADABLE) || code == EXIT_PANIC => {
            Err(PdfError::Unreadable)
        }
        // Killed by a signal: its CPU limit (SIGXCPU, then SIGKILL at the hard limit), or an
        // allocation past its memory limit, which aborts; anything else is as costly.
        _ => match std::os::unix::process::ExitStatusExt::signal(&status) {
            Some(SIGXCPU | SIGKILL) => Err(PdfError::TooSlow(bounds.wall)),
            _ => Err(PdfError::TooLarge),
        },
    }
}

const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;

/// `rill read-pdf MAX_BYTES MEMORY_BYTES CPU_SECONDS`: bounds itself, reads a PDF from standard
/// input and writes its text to standard output (at most [`MAX_TEXT_BYTES`]); returns the exit
/// code: whole, cut or unreadable.
pub fn worker(max_bytes: &str, memory_bytes: &str, cpu_seconds: &str) -> u8 {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let bound = |resource, value| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(value),
                maximum: Some(value),
            },
        )
    };
    // Without its bounds the reader reads nothing.
    let (Ok(memory), Ok(cpu)) = (memory_bytes.parse::<u64>(), cpu_seconds.parse::<u64>()) else {
        return EXIT_UNREADABLE;
    };
    if bound(Resource::Data, memory).is_err() || bound(Resource::Cpu, cpu).is_err() {
        return EXIT_UNREADABLE;
    }
    let Ok(max_bytes) = max_bytes.parse::<u64>() else {
        return EXIT_UNREADABLE;
    };
    let mut bytes = Vec::new();
    if std::io::stdin()
        .lock()
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .is_err()
        || u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max_bytes
    {
        return EXIT_UNREADABLE;
    }
    let Some(found) = extract(&bytes) else {
        return EXIT_UNREADABLE;
    };
    let mut out = std::io::stdout().lock();
    if out.write_all(found.text.as_bytes()).is_err() || out.flush().is_err() {
        return EXIT_UNREADABLE;
    }
    if found.cut {
        EXIT_CUT
    } else {
        EXIT_WHOLE
    }
}

/// The text of each page in order, a blank line between pages, cut at [`MAX_TEXT_BYTES`]. A
/// page whose text cannot be decoded adds nothing; `None` if the file is not a readable PDF.
fn extract(bytes: &[u8]) -> Option<PdfText> {
    let document = lopdf::Document::load_mem(bytes).ok()?;
    let mut text = String::new();
    for number in document.get_pages().into_keys() {
        let Ok(page) = document.extract_text(&[number]) else {
            continue;
        };
        let page = page.trim();
        if page.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(page);
        if text.len() > MAX_TEXT_BYTES {
            let mut end = MAX_TEXT_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            return Some(PdfText { text, cut: true });
        }
    }
    Some(PdfText { text, cut: false })
}
