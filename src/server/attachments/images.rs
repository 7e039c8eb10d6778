//! An uploaded image made safe to keep, show and send: decoded within bounds (a small file that
//! claims huge dimensions is refused before its pixels are allocated), turned upright by its
//! EXIF orientation, scaled so its long side is at most [`MAX_SIDE`] px (OpenAI's high-detail
//! limit; Anthropic and Gemini scale down larger ones themselves), and encoded afresh, which
//! leaves every piece of metadata (EXIF location included) behind. JPEG stays JPEG; PNG, GIF
//! (its first frame) and WebP become PNG, which loses nothing.

use std::io::{BufReader, Cursor, Read, Seek};

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// The long side of an image as stored and sent.
pub const MAX_SIDE: u32 = 2048;
/// The largest width or height a file may declare.
const MAX_DECLARED_SIDE: u32 = 16_384;
/// The most memory one decode may allocate (a 8,192 × 8,192 RGBA image is 256 MiB).
const MAX_DECODE_BYTES: u64 = 256 << 20;
const JPEG_QUALITY: u8 = 85;

/// An image as it is kept.
pub struct Reencoded {
    pub bytes: Vec<u8>,
    pub mime: &'static str,
}

/// Why an image could not be taken, in words for the person.
#[derive(Debug, thiserror::Error)]
pub enum ImageRefusal {
    #[error(
        "the image is too large to open: at most {MAX_DECLARED_SIDE} pixels a side and 256 MB \
         once decoded"
    )]
    TooLarge,
    #[error("the image could not be read; it may be damaged")]
    Unreadable,
}

fn format_of(mime: &str) -> Option<ImageFormat> {
    match mime {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// Decodes the image in `file` (of type `mime`, found in its bytes) and encodes it afresh. CPU
/// work: call it on a blocking thread.
pub fn reencode(file: impl Read + Seek, mime: &str) -> Result<Reencoded, ImageRefusal> {
    let format = format_of(mime).ok_or(ImageRefusal::Unreadable)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECLARED_SIDE);
    limits.max_image_height = Some(MAX_DECLARED_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::with_format(BufReader::new(file), format);
    reader.limits(limits);
    let refused = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => ImageRefusal::TooLarge,
        _ => ImageRefusal::Unreadable,
    };
    let mut decoder = reader.into_decoder().map_err(refused)?;
    let orientation = decoder.orientation().map_err(refused)?;
    let mut picture = DynamicImage::from_decoder(decoder).map_err(refused)?;
    picture.apply_orientation(orientation);
    if picture.width().max(picture.height()) > MAX_SIDE {
        picture = picture.resize(MAX_SIDE, MAX_SIDE, FilterType::Triangle);
    }
    let mut bytes = Vec::new();
    if format == ImageFormat::Jpeg {
        let encoder = JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY);
        picture
            .to_rgb8()
            .write_with_encoder(encoder)
            .map_err(refused)?;
        return Ok(Reencoded {
            bytes,
            mime: "image/jpeg",
        });
    }
    picture
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(refused)?;
    Ok(Reencoded {
        bytes,
        mime: "image/png",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let picture = DynamicImage::new_rgb8(width, height);
        let mut bytes = Vec::new();
        picture
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .expect("encodes");
        bytes
    }

    fn size_of(bytes: &[u8]) -> (u32, u32) {
        let picture = image::load_from_memory(bytes).expect("decodes");
        (picture.width(), picture.height())
    }

    #[test]
    fn large_images_are_scaled_to_the_long_side_and_small_ones_kept() {
        let wide = reencode(Cursor::new(png(3000, 1000)), "image/png").expect("taken");
        assert_eq!(wide.mime, "image/png");
        assert_eq!(size_of(&wide.bytes), (2048, 683));
        let small = reencode(Cursor::new(png(40, 30)), "image/png").expect("taken");
        assert_eq!(size_of(&small.bytes), (40, 30));
    }

    /// A valid PNG whose header claims `side` × `side` pixels, with one pixel's data.
    fn claiming(side: u32) -> Vec<u8> {
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&side.to_be_bytes());
        bomb[20..24].copy_from_slice(&side.to_be_bytes());
        let crc = crc32fast::hash(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        bomb
    }

    #[test]
    fn a_file_declaring_huge_dimensions_is_refused_before_decoding() {
        let bomb = claiming(100_000);
        assert!(matches!(
            reencode(Cursor::new(bomb), "image/png"),
            Err(ImageRefusal::TooLarge)
        ));
        assert!(matches!(
            reencode(
                Cursor::new(b"\x89PNG\r\n\x1a\nbroken".to_vec()),
                "image/png"
            ),
            Err(ImageRefusal::Unreadable)
        ));
    }
}
