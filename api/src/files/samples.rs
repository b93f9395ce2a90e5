//! Real, tiny files made in the test, shared with the policy, image, docx and upload tests.
//!
//! The one copy of these builders: the integration tests' support
//! (`tests/tests/suite/common/samples.rs`) compiles this file too, with `#[path]`, so it may
//! use only std and `image`, nothing of this crate.

use std::io::{Cursor, Write};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

pub fn rgb_image(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x * 7 % 256) as u8,
            (y * 13 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    }))
}

pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    match format {
        ImageFormat::WebP => {
            // The WebP encoder takes RGBA or RGB; keep alpha to exercise it.
            let rgba = DynamicImage::ImageRgba8(RgbaImage::from_fn(
                image.width(),
                image.height(),
                |x, y| Rgba([(x % 256) as u8, (y % 256) as u8, 90, 200]),
            ));
            rgba.write_to(&mut out, format).unwrap();
        }
        _ => image.write_to(&mut out, format).unwrap(),
    }
    out.into_inner()
}

pub fn png() -> Vec<u8> {
    encode(&rgb_image(40, 30), ImageFormat::Png)
}

pub fn jpeg() -> Vec<u8> {
    encode(&rgb_image(40, 30), ImageFormat::Jpeg)
}

pub fn webp() -> Vec<u8> {
    encode(&rgb_image(40, 30), ImageFormat::WebP)
}

pub fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec()
}

pub fn doc() -> Vec<u8> {
    let mut bytes = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    bytes.resize(1024, 0);
    bytes
}

/// A stored (uncompressed) ZIP with the given entries: local headers, central directory,
/// end record, as any ZIP writer lays them out.
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut directory = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let header = |signature: &[u8], central: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(signature);
            if central {
                h.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&0u16.to_le_bytes()); // stored
            h.extend_from_slice(&0u32.to_le_bytes()); // time, date
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central {
                h.extend_from_slice(&0u16.to_le_bytes()); // comment
                h.extend_from_slice(&0u16.to_le_bytes()); // disk
                h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
                h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(header(b"PK\x03\x04", false));
        out.extend_from_slice(data);
        directory.extend(header(b"PK\x01\x02", true));
    }
    let directory_offset = out.len() as u32;
    out.extend_from_slice(&directory);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    out.extend_from_slice(&directory_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

pub fn docx() -> Vec<u8> {
    zip(&[
        ("[Content_Types].xml", b"<?xml version=\"1.0\"?><Types/>"),
        ("_rels/.rels", b"<?xml version=\"1.0\"?><Relationships/>"),
        ("word/document.xml", b"<?xml version=\"1.0\"?><w:document/>"),
    ])
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG carrying a script after its IEND chunk: valid to decoders, HTML to a naive sniffer.
pub fn png_polyglot() -> Vec<u8> {
    let mut bytes = png();
    bytes
        .write_all(b"<script>alert(document.cookie)</script>")
        .unwrap();
    bytes
}
