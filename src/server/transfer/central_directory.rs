//! A zip archive's list of files (its central directory) measured before the `zip` crate reads
//! it: the crate holds every entry of that list in memory at once, with no limit of its own, so
//! an upload of tiny entries (200 MB of them is over two million) would take gigabytes. This
//! reads only the list's fixed-size records, a few at a time, and refuses an archive whose list
//! is longer than Rill holds (real exports list their conversations and the images and files
//! beside them: thousands, not millions).

use std::io::{BufReader, Read, Seek, SeekFrom};

/// Entries an archive may list.
pub const MAX_ENTRIES: u64 = 100_000;
/// Bytes of names, extra fields and comments its entries may carry in all.
pub const MAX_LISTED_BYTES: u64 = 16 << 20;

const END: [u8; 4] = *b"PK\x05\x06";
const END_LEN: usize = 22;
const END64_LOCATOR: [u8; 4] = *b"PK\x06\x07";
const END64_LOCATOR_LEN: usize = 20;
const END64: [u8; 4] = *b"PK\x06\x06";
const END64_LEN: usize = 56;
const ENTRY: [u8; 4] = *b"PK\x01\x02";
const ENTRY_LEN: usize = 46;
/// The end record's comment is at most this long, so the record is within the file's last
/// `END_LEN + MAX_COMMENT` bytes.
const MAX_COMMENT: usize = u16::MAX as usize;

/// Why an archive's list is refused, in words for the person who uploaded it.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ListError {
    #[error("the zip archive has no end record (is it whole?)")]
    NoEnd,
    #[error("the zip archive's list of files is damaged")]
    Damaged,
    #[error("the zip archive lists {0} files; Rill reads archives of at most {MAX_ENTRIES}")]
    TooMany(u64),
    #[error("the zip archive's list of files is larger than the {} MB Rill reads", MAX_LISTED_BYTES >> 20)]
    TooLarge,
    #[error("the upload could not be read back")]
    Io,
}

impl From<std::io::Error> for ListError {
    fn from(error: std::io::Error) -> Self {
        tracing::error!("reading an import's temporary file: {error}");
        ListError::Io
    }
}

/// Checks the list of files of the archive in `file`; leaves the file's position anywhere.
pub fn check(file: &mut std::fs::File) -> Result<(), ListError> {
    let length = file.seek(SeekFrom::End(0))?;
    let tail_length = usize::try_from(length)
        .unwrap_or(usize::MAX)
        .min(END_LEN + MAX_COMMENT);
    let tail_start = length - tail_length as u64;
    file.seek(SeekFrom::Start(tail_start))?;
    let mut tail = vec![0u8; tail_length];
    file.read_exact(&mut tail)?;
    // The last end record in the file (a comment could hold the signature; the real record is
    // the one nearest the end).
    let at = (0..=tail_length.saturating_sub(END_LEN))
        .rev()
        .find(|&i| tail.get(i..i + 4) == Some(&END[..]))
        .ok_or(ListError::NoEnd)?;
    let end = tail.get(at..at + END_LEN).ok_or(ListError::NoEnd)?;
    let mut entries = u64::from(u16_at(end, 10));
    let mut offset = u64::from(u32_at(end, 16));
    let in_zip64 = entries == u64::from(u16::MAX)
        || offset == u64::from(u32::MAX)
        || u32_at(end, 12) == u32::MAX;
    if in_zip64 {
        // Zip64: a locator right before the end record names where the larger record is.
        let locator = at
            .checked_sub(END64_LOCATOR_LEN)
            .and_then(|l| tail.get(l..l + END64_LOCATOR_LEN))
            .filter(|l| l.get(..4) == Some(&END64_LOCATOR[..]))
            .ok_or(ListError::Damaged)?;
        file.seek(SeekFrom::Start(u64_at(locator, 8)))?;
        let mut end64 = [0u8; END64_LEN];
        file.read_exact(&mut end64)
            .map_err(|_| ListError::Damaged)?;
        if end64[..4] != END64 {
            return Err(ListError::Damaged);
        }
        entries = u64_at(&end64, 32);
        offset = u64_at(&end64, 48);
    }
    if entries > MAX_ENTRIES {
        return Err(ListError::TooMany(entries));
    }
    // Each entry: a fixed record, then its name, extra fields and comment.
    file.seek(SeekFrom::Start(offset))?;
    let mut list = BufReader::new(&mut *file);
    let mut listed = 0u64;
    let mut record = [0u8; ENTRY_LEN];
    for _ in 0..entries {
        list.read_exact(&mut record)
            .map_err(|_| ListError::Damaged)?;
        if record[..4] != ENTRY {
            return Err(ListError::Damaged);
        }
        let variable = i64::from(u16_at(&record, 28))
            + i64::from(u16_at(&record, 30))
            + i64::from(u16_at(&record, 32));
        listed = listed.saturating_add(variable.unsigned_abs());
        if listed > MAX_LISTED_BYTES {
            return Err(ListError::TooLarge);
        }
        list.seek_relative(variable)?;
    }
    Ok(())
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    if let Some(s) = bytes.get(at..at + 2) {
        b.copy_from_slice(s);
    }
    u16::from_le_bytes(b)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = bytes.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = bytes.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn archive(entries: usize, name: impl Fn(usize) -> String) -> std::fs::File {
        let mut file = tempfile::tempfile().expect("temp file");
        let mut zip = zip::ZipWriter::new(&mut file);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for i in 0..entries {
            zip.start_file(name(i), stored).expect("entry");
            zip.write_all(b"x").expect("written");
        }
        zip.finish().expect("zip");
        file
    }

    #[test]
    fn an_export_sized_list_passes() {
        let mut file = archive(3, |i| format!("conversations-00{i}.json"));
        assert_eq!(check(&mut file), Ok(()));
    }

    #[test]
    fn more_entries_than_rill_holds_are_refused_before_reading_them() {
        // Over 65,535 entries: the count is in the zip64 record.
        let mut file = archive(100_001, |i| format!("{i}"));
        assert_eq!(check(&mut file), Err(ListError::TooMany(100_001)));
    }

    #[test]
    fn long_names_beyond_the_listed_bytes_are_refused() {
        let mut file = archive(300, |i| format!("{i}{}", "n".repeat(60_000)));
        assert_eq!(check(&mut file), Err(ListError::TooLarge));
    }

    #[test]
    fn a_cut_archive_has_no_end() {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(b"PK\x03\x04 and nothing more")
            .expect("written");
        assert_eq!(check(&mut file), Err(ListError::NoEnd));
    }
}
