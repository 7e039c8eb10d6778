//! The files an imported conversation carries (issue 26), taken out of Rill's archive on the
//! reader's thread: each file a conversation's questions name is looked up by exactly the entry
//! `files/<sha256>` (a name in the archive is never used as a path: nothing is written where an
//! entry says), copied to an unlinked temporary file a piece at a time while it is hashed and its
//! type learned, and refused, in words naming it, when it is missing, larger than the per-file
//! limit (however small the archive says it is: a zip bomb stops there), or not the bytes its
//! SHA-256 says. The importer then takes each as an upload is taken (`attachments::take`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::format::byte_size;
use crate::server::attachments::sniff::{TextCheck, HEAD_BYTES};
use crate::server::attachments::take::{hex, is_sha256};
use crate::server::export_format::Conversation;

/// Where files are taken out to, and how large one may be.
#[derive(Clone, Debug)]
pub struct FileBounds {
    /// The directory for temporary files (the database's).
    pub dir: PathBuf,
    /// Bytes one file may be (the per-file upload limit).
    pub max_file_bytes: u64,
}

/// A file taken out of an archive, as it came.
#[derive(Debug)]
pub struct Extracted {
    /// The SHA-256 it is named by, which its bytes were checked to have.
    pub sha256: String,
    /// An unlinked temporary file holding it, at its start.
    pub file: File,
    pub size: u64,
    pub head: Vec<u8>,
    pub text: bool,
}

/// The upload read at positions of its own: two readers of one archive (its conversations and
/// the files beside them) share the file but never each other's place in it.
#[derive(Clone, Debug)]
pub struct Positioned {
    file: Arc<File>,
    at: u64,
}

impl Positioned {
    pub fn new(file: File) -> Self {
        Self {
            file: Arc::new(file),
            at: 0,
        }
    }
}

impl Read for Positioned {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at = self.at.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }
}

impl Seek for Positioned {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let outside = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek outside");
        self.at = match to {
            SeekFrom::Start(at) => at,
            SeekFrom::Current(by) => self.at.checked_add_signed(by).ok_or_else(outside)?,
            SeekFrom::End(by) => self
                .file
                .metadata()?
                .len()
                .checked_add_signed(by)
                .ok_or_else(outside)?,
        };
        Ok(self.at)
    }
}

/// Each file `conversation`'s questions name, once, out of `archive`; `unpacked_left` is what
/// the import may still unpack. Why not, in words naming the file.
pub fn extract_files(
    archive: &mut zip::ZipArchive<Positioned>,
    conversation: &Conversation,
    bounds: &FileBounds,
    unpacked_left: &mut u64,
) -> Result<Vec<Extracted>, String> {
    let mut taken = Vec::new();
    for file in conversation.distinct_files() {
        let name = &file.name;
        if !is_sha256(&file.sha256) {
            return Err(format!(
                "its file “{name}” is not named by a SHA-256 (64 hex digits), so it cannot be \
                 found in the archive"
            ));
        }
        let entry = match archive.by_name(&file.entry()) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(format!(
                    "its file “{name}” is not in the archive ({} is missing)",
                    file.entry()
                ))
            }
            Err(e) => return Err(format!("its file “{name}” cannot be read: {e}")),
        };
        let too_large = || {
            format!(
                "its file “{name}” is larger than the {} this server takes for one file",
                byte_size(bounds.max_file_bytes)
            )
        };
        if entry.size() > bounds.max_file_bytes {
            return Err(too_large());
        }
        let out = tempfile::tempfile_in(&bounds.dir).map_err(|e| {
            tracing::error!("creating an imported file's temporary copy: {e}");
            "the server could not make room for its files".to_owned()
        })?;
        // At most one byte past the limit is read, whatever the entry claims to unpack to.
        let allowed = bounds.max_file_bytes.min(*unpacked_left);
        let copied = copy_checked(entry.take(allowed.saturating_add(1)), out)
            .map_err(|e| format!("its file “{name}” cannot be read: {e}"))?;
        if copied.size > allowed {
            return Err(if allowed < bounds.max_file_bytes {
                "the archive unpacks to more than this server takes from one import".to_owned()
            } else {
                too_large()
            });
        }
        *unpacked_left = unpacked_left.saturating_sub(copied.size);
        if copied.sha256 != file.sha256 {
            return Err(format!(
                "its file “{name}” does not have the SHA-256 it is listed with: the archive is \
                 damaged or was changed"
            ));
        }
        taken.push(copied);
    }
    Ok(taken)
}

/// Copies `from` into `out`, hashing it and learning its type on the way; `out` rewound.
fn copy_checked(mut from: impl Read, mut out: File) -> std::io::Result<Extracted> {
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(HEAD_BYTES);
    let mut text = TextCheck::default();
    let mut size: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let data = buf.get(..n).unwrap_or_default();
        hasher.update(data);
        text.feed(data);
        let wanted = HEAD_BYTES.saturating_sub(head.len());
        head.extend_from_slice(data.get(..wanted.min(n)).unwrap_or_default());
        out.write_all(data)?;
        size = size.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }
    out.flush()?;
    out.rewind()?;
    Ok(Extracted {
        sha256: hex(&hasher.finalize()),
        file: out,
        size,
        head,
        text: text.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_readers_of_one_file_keep_their_own_places() {
        let mut file = tempfile::tempfile().expect("a temporary file");
        file.write_all(b"0123456789").expect("written");
        let mut first = Positioned::new(file);
        let mut second = first.clone();
        let mut two = [0u8; 2];
        first.read_exact(&mut two).expect("read");
        assert_eq!(&two, b"01");
        second.seek(SeekFrom::End(-2)).expect("seek");
        second.read_exact(&mut two).expect("read");
        assert_eq!(&two, b"89");
        first.read_exact(&mut two).expect("read");
        assert_eq!(&two, b"23");
        assert!(first.seek(SeekFrom::Current(-10)).is_err());
    }
}
