//! A file's type from its bytes, never from its name: images by their signatures, text by being
//! UTF-8 throughout (checked a piece at a time as the upload arrives), anything else a download.

use crate::model::attachments::AttachmentKind;

/// A PDF's type (its text is read: `pdf.rs`).
pub const PDF: &str = "application/pdf";

/// Bytes kept from the start of a file to find its signature.
pub const HEAD_BYTES: usize = 16;

/// What a file's bytes say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sniffed {
    pub mime: &'static str,
    pub kind: AttachmentKind,
}

/// The image types shown inline and sent to models (every provider takes these four).
fn image_type(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else {
        None
    }
}

/// The type of a file that starts with `head` and, read whole, was UTF-8 text (`text`). Text is
/// served as `text/plain` whatever it holds (HTML and SVG included), so it never runs.
pub fn sniff(head: &[u8], text: bool) -> Sniffed {
    if let Some(mime) = image_type(head) {
        return Sniffed {
            mime,
            kind: AttachmentKind::Image,
        };
    }
    if head.starts_with(b"%PDF-") {
        return Sniffed {
            mime: PDF,
            kind: AttachmentKind::File,
        };
    }
    if text {
        return Sniffed {
            mime: "text/plain; charset=utf-8",
            kind: AttachmentKind::Text,
        };
    }
    Sniffed {
        mime: "application/octet-stream",
        kind: AttachmentKind::File,
    }
}

/// Checks UTF-8 a piece at a time: a character split between pieces is carried over. NUL is
/// not text (binary formats are full of it; no text file has one).
#[derive(Debug)]
pub struct TextCheck {
    carry: Vec<u8>,
    text: bool,
}

impl Default for TextCheck {
    fn default() -> Self {
        Self {
            carry: Vec::new(),
            text: true,
        }
    }
}

impl TextCheck {
    pub fn feed(&mut self, piece: &[u8]) {
        if !self.text {
            return;
        }
        if piece.contains(&0) {
            self.text = false;
            return;
        }
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(piece);
        match std::str::from_utf8(&joined) {
            Ok(_) => {}
            // Cut inside a character at the end: keep its start for the next piece.
            Err(e) if e.error_len().is_none() => {
                self.carry = joined.get(e.valid_up_to()..).unwrap_or_default().to_vec();
            }
            Err(_) => self.text = false,
        }
    }

    /// Whether everything fed was UTF-8 text (nothing left half a character).
    pub fn finish(&self) -> bool {
        self.text && self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        let png = sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", false);
        assert_eq!((png.mime, png.kind), ("image/png", AttachmentKind::Image));
        assert_eq!(sniff(b"GIF89a....", false).mime, "image/gif");
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 ", false).mime, "image/webp");
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0], false).mime, "image/jpeg");
        assert_eq!(sniff(b"%PDF-1.7\n", false).mime, "application/pdf");
        // Markup is text, served as text: never a page or an image.
        let html = sniff(b"<html><script>", true);
        assert_eq!(
            (html.mime, html.kind),
            ("text/plain; charset=utf-8", AttachmentKind::Text)
        );
        assert_eq!(sniff(b"\x01\x02garbage", false).kind, AttachmentKind::File);
    }

    #[test]
    fn text_is_checked_across_pieces() {
        let word = "héllo wörld ✓".as_bytes();
        for cut in 0..word.len() {
            let mut check = TextCheck::default();
            let (a, b) = word.split_at(cut);
            check.feed(a);
            check.feed(b);
            assert!(check.finish(), "cut at {cut}");
        }
        let mut cut_short = TextCheck::default();
        cut_short.feed(&word[..2]);
        assert!(
            !cut_short.finish(),
            "half a character at the end is not text"
        );
        let mut binary = TextCheck::default();
        binary.feed(b"abc\0def");
        assert!(!binary.finish());
        let mut invalid = TextCheck::default();
        invalid.feed(&[b'a', 0xFF, b'b']);
        assert!(!invalid.finish());
    }
}
