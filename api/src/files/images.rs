//! Images are decoded under limits, turned upright, re-encoded without metadata and given a
//! thumbnail. Re-encoding is what makes an image safe to serve: EXIF (GPS position, camera
//! serial), XMP, comments and anything appended after the image data (a `<script>` after a
//! PNG's IEND, a ZIP after a JPEG) are gone, because only pixels survive a decode, plus a
//! small, well-formed colour profile so wide-gamut phone photos keep their colours.
//!
//! Everything here is CPU-bound and blocking: callers run it in `spawn_blocking`. At most one
//! image per core is processed at a time (the rest wait), which bounds the memory that decoded
//! pixels take however many uploads arrive at once: more would not finish sooner anyway.

use std::io::{BufRead, Seek, Write};
use std::sync::{Condvar, Mutex, PoisonError};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::error::ImageError;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, Limits};

use super::policy::SniffedType;
use crate::error::{Error, Result};

/// Wider or taller than this is refused before any pixel is decoded.
pub const MAX_DIMENSION: u32 = 10_000;
/// The decoded pixels may take at most this much memory (a 48-megapixel RGB photo is 144 MB).
pub const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;
/// The long side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX: u32 = 320;
const JPEG_QUALITY: u8 = 85;
const THUMBNAIL_JPEG_QUALITY: u8 = 80;
/// Display P3 and sRGB profiles are a few KiB; a bigger "profile" is more likely a payload.
const MAX_ICC_BYTES: usize = 64 * 1024;

/// The outcome of [`process_image`]; the re-encoded image itself went to the caller's writer.
#[derive(Clone, PartialEq, Eq)]
pub struct ProcessedImage {
    /// Same as the input's: images keep their format.
    pub mime: &'static str,
    /// After orientation was applied: what a viewer sees.
    pub width: u32,
    pub height: u32,
    /// In the same format as the image.
    pub thumbnail: Vec<u8>,
    pub thumbnail_width: u32,
    pub thumbnail_height: u32,
}

impl std::fmt::Debug for ProcessedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessedImage")
            .field("mime", &self.mime)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("thumbnail_bytes", &self.thumbnail.len())
            .field("thumbnail_width", &self.thumbnail_width)
            .field("thumbnail_height", &self.thumbnail_height)
            .finish()
    }
}

/// Decodes `input` as the sniffed `kind`, applies its EXIF orientation, writes it re-encoded
/// without metadata to `output` (JPEG at quality 85, PNG, or lossless WebP: the only WebP the
/// `image` crate writes, so a lossy WebP photo may grow) and makes a thumbnail of at most
/// [`THUMBNAIL_MAX`] px on the long side in the same format. Animated WebP keeps its first
/// frame.
///
/// A header claiming more than [`MAX_DIMENSION`] or [`MAX_DECODED_BYTES`] is refused with
/// `UnsupportedFileType` before anything is allocated; so is an image that does not decode.
pub fn process_image(
    input: impl BufRead + Seek,
    kind: SniffedType,
    output: &mut impl Write,
) -> Result<ProcessedImage> {
    let _permit = ImageGate::global().enter();
    let format = match kind {
        SniffedType::Jpeg => ImageFormat::Jpeg,
        SniffedType::Png => ImageFormat::Png,
        SniffedType::Webp => ImageFormat::WebP,
        other => {
            return Err(Error::internal(anyhow::anyhow!(
                "process_image called for {other:?}"
            )));
        }
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODED_BYTES);

    let mut reader = ImageReader::new(input);
    reader.set_format(format);
    reader.limits(limits);
    // `into_decoder` checks the dimensions from the header; the pixel buffer size we check
    // ourselves below, as `ImageReader::decode` would.
    let mut decoder = reader
        .into_decoder()
        .map_err(|error| refusal(error, kind))?;
    if decoder.total_bytes() > MAX_DECODED_BYTES {
        return Err(too_large());
    }
    let orientation = decoder
        .orientation()
        .map_err(|error| refusal(error, kind))?;
    let icc_profile = decoder
        .icc_profile()
        .ok()
        .flatten()
        .filter(|profile| is_icc_profile(profile));
    let mut image = DynamicImage::from_decoder(decoder).map_err(|error| refusal(error, kind))?;
    image.apply_orientation(orientation);

    encode(&image, kind, JPEG_QUALITY, icc_profile.clone(), output)?;

    let thumbnail_image = if image.width().max(image.height()) > THUMBNAIL_MAX {
        image.thumbnail(THUMBNAIL_MAX, THUMBNAIL_MAX)
    } else {
        image.clone()
    };
    let mut thumbnail = Vec::new();
    encode(
        &thumbnail_image,
        kind,
        THUMBNAIL_JPEG_QUALITY,
        icc_profile,
        &mut thumbnail,
    )?;

    Ok(ProcessedImage {
        mime: kind.mime(),
        width: image.width(),
        height: image.height(),
        thumbnail,
        thumbnail_width: thumbnail_image.width(),
        thumbnail_height: thumbnail_image.height(),
    })
}

/// Writes pixels and, at most, the colour profile: encoders add no EXIF unless asked.
fn encode(
    image: &DynamicImage,
    kind: SniffedType,
    jpeg_quality: u8,
    icc_profile: Option<Vec<u8>>,
    output: &mut impl Write,
) -> Result<()> {
    fn with_profile<E: ImageEncoder>(mut encoder: E, profile: Option<Vec<u8>>) -> E {
        if let Some(profile) = profile {
            // An encoder that cannot embed a profile still writes a correct image.
            let _ = encoder.set_icc_profile(profile);
        }
        encoder
    }
    let result = match kind {
        SniffedType::Jpeg => {
            // JPEG has no alpha; `write_with_encoder` converts to RGB or grey as needed.
            let encoder = JpegEncoder::new_with_quality(&mut *output, jpeg_quality);
            image.write_with_encoder(with_profile(encoder, icc_profile))
        }
        SniffedType::Png => {
            let encoder = PngEncoder::new_with_quality(
                &mut *output,
                CompressionType::Default,
                FilterType::Adaptive,
            );
            image.write_with_encoder(with_profile(encoder, icc_profile))
        }
        SniffedType::Webp => {
            let encoder = WebPEncoder::new_lossless(&mut *output);
            image.write_with_encoder(with_profile(encoder, icc_profile))
        }
        other => return Err(Error::internal(anyhow::anyhow!("cannot encode {other:?}"))),
    };
    result.map_err(|error| match error {
        ImageError::IoError(io) => {
            Error::internal(anyhow::Error::new(io).context("writing an image"))
        }
        other => Error::internal(anyhow::Error::new(other).context("re-encoding an image")),
    })
}

/// A colour profile that is what it says: the size its header declares, the `acsp` signature,
/// and small. Anything else is dropped (the image then displays as sRGB).
fn is_icc_profile(profile: &[u8]) -> bool {
    profile.len() >= 128
        && profile.len() <= MAX_ICC_BYTES
        && profile[36..40] == *b"acsp"
        && u32::from_be_bytes([profile[0], profile[1], profile[2], profile[3]]) as usize
            == profile.len()
}

/// A counting semaphore for blocking threads (tokio's needs an async context).
struct ImageGate {
    busy: Mutex<usize>,
    freed: Condvar,
    capacity: usize,
}

struct ImagePermit(&'static ImageGate);

impl ImageGate {
    fn global() -> &'static Self {
        static GATE: std::sync::OnceLock<ImageGate> = std::sync::OnceLock::new();
        GATE.get_or_init(|| Self {
            busy: Mutex::new(0),
            freed: Condvar::new(),
            capacity: std::thread::available_parallelism().map_or(2, |cores| cores.get()),
        })
    }

    fn enter(&'static self) -> ImagePermit {
        // A panic while holding the lock leaves a plain counter, still correct to use.
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        while *busy >= self.capacity {
            busy = self
                .freed
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *busy += 1;
        ImagePermit(self)
    }
}

impl Drop for ImagePermit {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(PoisonError::into_inner);
        *busy -= 1;
        self.0.freed.notify_one();
    }
}

fn too_large() -> Error {
    Error::UnsupportedFileType("image is too large to process".into())
}

/// Limits and undecodable data are the uploader's problem; only real I/O failures are ours.
fn refusal(error: ImageError, kind: SniffedType) -> Error {
    use std::io::ErrorKind;
    match error {
        ImageError::Limits(_) => too_large(),
        ImageError::IoError(io)
            if !matches!(io.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData) =>
        {
            Error::internal(anyhow::Error::new(io).context("reading an image"))
        }
        _ => Error::UnsupportedFileType(format!(
            "the image could not be read: it is damaged or not really {}",
            match kind {
                SniffedType::Jpeg => "a JPEG",
                SniffedType::Png => "a PNG",
                _ => "a WebP",
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::samples::{crc32, encode as encode_sample, png_polyglot, rgb_image};
    use std::io::Cursor;
    use std::time::{Duration, Instant};

    fn process(bytes: &[u8], kind: SniffedType) -> (Result<ProcessedImage>, Vec<u8>) {
        let mut out = Vec::new();
        let result = process_image(Cursor::new(bytes), kind, &mut out);
        (result, out)
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    }

    /// An EXIF APP1 segment (big-endian TIFF) with an orientation, an ImageDescription and a
    /// GPS IFD holding a latitude reference: what a phone writes, in miniature.
    fn exif_app1(orientation: u16) -> Vec<u8> {
        let description = b"GPS 51.5007N 0.1246W secret place\0";
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"MM\0\x2A\0\0\0\x08");
        // IFD0 at 8: three entries, then the next-IFD offset.
        let ifd0_len = 2 + 3 * 12 + 4;
        let description_at = 8 + ifd0_len;
        let gps_at = description_at + description.len();
        tiff.extend_from_slice(&3u16.to_be_bytes());
        let mut entry = |tag: u16, kind: u16, count: u32, value: [u8; 4]| {
            tiff.extend_from_slice(&tag.to_be_bytes());
            tiff.extend_from_slice(&kind.to_be_bytes());
            tiff.extend_from_slice(&count.to_be_bytes());
            tiff.extend_from_slice(&value);
        };
        entry(
            0x010E,
            2,
            description.len() as u32,
            (description_at as u32).to_be_bytes(),
        );
        let o = orientation.to_be_bytes();
        entry(0x0112, 3, 1, [o[0], o[1], 0, 0]);
        entry(0x8825, 4, 1, (gps_at as u32).to_be_bytes());
        tiff.extend_from_slice(&0u32.to_be_bytes());
        tiff.extend_from_slice(description);
        // GPS IFD: GPSLatitudeRef = "N".
        tiff.extend_from_slice(&1u16.to_be_bytes());
        tiff.extend_from_slice(&1u16.to_be_bytes());
        tiff.extend_from_slice(&2u16.to_be_bytes());
        tiff.extend_from_slice(&2u32.to_be_bytes());
        tiff.extend_from_slice(b"N\0\0\0");
        tiff.extend_from_slice(&0u32.to_be_bytes());

        let mut segment = vec![0xFF, 0xE1];
        segment.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
        segment.extend_from_slice(b"Exif\0\0");
        segment.extend_from_slice(&tiff);
        segment
    }

    fn jpeg_with_exif(width: u32, height: u32, orientation: u16) -> Vec<u8> {
        let plain = encode_sample(&rgb_image(width, height), ImageFormat::Jpeg);
        let mut bytes = plain[..2].to_vec(); // SOI
        bytes.extend(exif_app1(orientation));
        bytes.extend_from_slice(&plain[2..]);
        bytes
    }

    #[test]
    fn exif_and_gps_are_gone_after_re_encoding() {
        let input = jpeg_with_exif(64, 48, 1);
        assert!(contains(&input, b"Exif") && contains(&input, b"GPS"));
        let (result, out) = process(&input, SniffedType::Jpeg);
        let image = result.unwrap();
        assert_eq!(
            (image.mime, image.width, image.height),
            ("image/jpeg", 64, 48)
        );
        assert!(out.starts_with(&[0xFF, 0xD8, 0xFF]));
        assert!(!contains(&out, b"Exif"), "EXIF survived");
        assert!(!contains(&out, b"GPS"), "GPS survived");
        assert!(!contains(&image.thumbnail, b"Exif"));
        image::load_from_memory_with_format(&out, ImageFormat::Jpeg).unwrap();
    }

    #[test]
    fn orientation_6_turns_the_image_upright() {
        let (result, out) = process(&jpeg_with_exif(64, 48, 6), SniffedType::Jpeg);
        let image = result.unwrap();
        assert_eq!((image.width, image.height), (48, 64));
        let decoded = image::load_from_memory(&out).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (48, 64));
    }

    #[test]
    fn thumbnails_fit_in_320_px_and_keep_the_format() {
        for (format, kind) in [
            (ImageFormat::Jpeg, SniffedType::Jpeg),
            (ImageFormat::Png, SniffedType::Png),
            (ImageFormat::WebP, SniffedType::Webp),
        ] {
            let input = encode_sample(&rgb_image(1000, 400), format);
            let (result, out) = process(&input, kind);
            let image = result.unwrap();
            assert_eq!((image.width, image.height), (1000, 400));
            assert_eq!(
                (image.thumbnail_width, image.thumbnail_height),
                (320, 128),
                "{kind:?}"
            );
            let thumb = image::load_from_memory_with_format(&image.thumbnail, format).unwrap();
            assert_eq!((thumb.width(), thumb.height()), (320, 128));
            let full = image::load_from_memory_with_format(&out, format).unwrap();
            assert_eq!((full.width(), full.height()), (1000, 400));
        }
        // Small images are not blown up.
        let (result, _) = process(
            &encode_sample(&rgb_image(50, 20), ImageFormat::Png),
            SniffedType::Png,
        );
        let image = result.unwrap();
        assert_eq!((image.thumbnail_width, image.thumbnail_height), (50, 20));
    }

    fn png_chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc_input);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }

    fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
        png_chunk(&mut out, b"IHDR", &ihdr);
        // A few bytes of zlib data: a bomb would be a long run of zeros here.
        png_chunk(
            &mut out,
            b"IDAT",
            &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        png_chunk(&mut out, b"IEND", &[]);
        out
    }

    #[test]
    fn decompression_bombs_are_refused_before_decoding() {
        for (width, height) in [(100_000, 100_000), (10_001, 10), (9_000, 9_000)] {
            let started = Instant::now();
            let (result, out) = process(&png_header_claiming(width, height), SniffedType::Png);
            match result {
                Err(Error::UnsupportedFileType(reason)) => {
                    assert_eq!(reason, "image is too large to process", "{width}x{height}")
                }
                other => panic!("{width}x{height}: {other:?}"),
            }
            assert!(out.is_empty());
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "took {:?}",
                started.elapsed()
            );
        }
    }

    #[test]
    fn a_png_polyglot_loses_its_script() {
        let (result, out) = process(&png_polyglot(), SniffedType::Png);
        result.unwrap();
        assert!(!contains(&out, b"<script"));
        assert!(
            out.ends_with(&[0xAE, 0x42, 0x60, 0x82]),
            "the output ends at IEND's CRC"
        );
    }

    fn jpeg_with_icc(profile: &[u8]) -> Vec<u8> {
        let plain = encode_sample(&rgb_image(32, 32), ImageFormat::Jpeg);
        let mut bytes = plain[..2].to_vec();
        bytes.extend_from_slice(&[0xFF, 0xE2]);
        bytes.extend_from_slice(&((2 + 14 + profile.len()) as u16).to_be_bytes());
        bytes.extend_from_slice(b"ICC_PROFILE\0\x01\x01");
        bytes.extend_from_slice(profile);
        bytes.extend_from_slice(&plain[2..]);
        bytes
    }

    #[test]
    fn a_real_colour_profile_is_kept_and_a_fake_one_dropped() {
        let mut profile = vec![0u8; 132];
        profile[..4].copy_from_slice(&132u32.to_be_bytes());
        profile[36..40].copy_from_slice(b"acsp");
        profile[40..44].copy_from_slice(b"APPL");
        let (result, out) = process(&jpeg_with_icc(&profile), SniffedType::Jpeg);
        result.unwrap();
        assert!(contains(&out, b"ICC_PROFILE") && contains(&out, b"acsp"));

        let mut fake = b"<script>alert(1)</script>".to_vec();
        fake.resize(200, b' ');
        let (result, out) = process(&jpeg_with_icc(&fake), SniffedType::Jpeg);
        result.unwrap();
        assert!(!contains(&out, b"ICC_PROFILE") && !contains(&out, b"<script"));
    }

    #[test]
    fn the_gate_admits_one_image_per_core() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static INSIDE: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        let gate = ImageGate::global();
        let threads: Vec<_> = (0..gate.capacity * 3)
            .map(|_| {
                std::thread::spawn(move || {
                    let _permit = gate.enter();
                    let now = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
                    MOST.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    INSIDE.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // Other tests may hold permits too, so at most the capacity, and at least one.
        let most = MOST.load(Ordering::SeqCst);
        assert!(most >= 1 && most <= gate.capacity, "{most} inside at once");
    }

    #[test]
    fn damaged_images_are_refused() {
        let png = encode_sample(&rgb_image(40, 30), ImageFormat::Png);
        let (result, _) = process(&png[..png.len() / 2], SniffedType::Png);
        assert!(matches!(result, Err(Error::UnsupportedFileType(r)) if r.contains("damaged")));
        let (result, _) = process(b"\xFF\xD8\xFF\xE0garbage", SniffedType::Jpeg);
        assert!(matches!(result, Err(Error::UnsupportedFileType(_))));
        let (result, _) = process(b"%PDF-1.4", SniffedType::Pdf);
        assert!(matches!(result, Err(Error::Internal(_))));
    }
}
