//! Real, small files made in the test: what people upload, and what they must not.

use image::ImageFormat;

// The api crate's unit tests build the same images, ZIPs and Word files: one copy of those
// builders, compiled here as well (it uses only std and `image`).
#[path = "../../../../api/src/files/samples.rs"]
mod shared;
// The S3 test binary includes this support module too, and uses none of these.
#[allow(unused_imports)]
pub use shared::{crc32, docx, encode, rgb_image, zip};

pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(&rgb_image(width, height), ImageFormat::Png)
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(&rgb_image(width, height), ImageFormat::Jpeg)
}

/// The camera make written into [`jpeg_with_exif`], to look for in what is served.
pub const EXIF_CAMERA: &str = "ChatdeskTestCam";

/// A 40x30 JPEG with an EXIF APP1 segment, as a phone writes it: camera make, orientation 6
/// (the picture must be turned 90° clockwise to be upright) and a GPS position (59°20'N, 18°3'E).
pub fn jpeg_with_exif() -> Vec<u8> {
    let plain = jpeg(40, 30);
    let tiff = exif_tiff();
    let mut segment = Vec::new();
    segment.extend_from_slice(&[0xFF, 0xE1]);
    segment.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend_from_slice(&tiff);
    // Right after SOI, before everything else, where cameras put it.
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&segment);
    out.extend_from_slice(&plain[2..]);
    out
}

/// A big-endian TIFF structure: IFD0 (Make, Orientation, a GPS IFD pointer) and a GPS IFD.
fn exif_tiff() -> Vec<u8> {
    const ASCII: u16 = 2;
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const RATIONAL: u16 = 5;
    let make = format!("{EXIF_CAMERA}\0");
    // Layout: header (8) | IFD0: 2 + 3*12 + 4 = 42 | make | GPS IFD: 2 + 4*12 + 4 = 54 | rationals
    let ifd0_at = 8u32;
    let make_at = ifd0_at + 42;
    let gps_at = make_at + make.len() as u32;
    let latitude_at = gps_at + 54;
    let longitude_at = latitude_at + 24;

    let mut out = b"MM\0\x2A".to_vec();
    out.extend_from_slice(&ifd0_at.to_be_bytes());
    let entry = |out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        out.extend_from_slice(&tag.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&value);
    };
    out.extend_from_slice(&3u16.to_be_bytes());
    entry(
        &mut out,
        0x010F,
        ASCII,
        make.len() as u32,
        make_at.to_be_bytes(),
    );
    entry(&mut out, 0x0112, SHORT, 1, [0, 6, 0, 0]);
    entry(&mut out, 0x8825, LONG, 1, gps_at.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(make.as_bytes());

    out.extend_from_slice(&4u16.to_be_bytes());
    entry(&mut out, 0x0001, ASCII, 2, *b"N\0\0\0");
    entry(&mut out, 0x0002, RATIONAL, 3, latitude_at.to_be_bytes());
    entry(&mut out, 0x0003, ASCII, 2, *b"E\0\0\0");
    entry(&mut out, 0x0004, RATIONAL, 3, longitude_at.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    for (degrees, minutes) in [(59u32, 20u32), (18, 3)] {
        for (numerator, denominator) in [(degrees, 1u32), (minutes, 1), (0, 1)] {
            out.extend_from_slice(&numerator.to_be_bytes());
            out.extend_from_slice(&denominator.to_be_bytes());
        }
    }
    out
}

/// A PNG whose header claims `width` x `height` RGBA pixels, with a few bytes of image data:
/// decoding it would need gigabytes, so it must be refused from its header.
pub fn png_bomb_header(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc_input);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    };
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, no filter, no interlace
    chunk(b"IHDR", &header);
    // An empty zlib stream: a real bomb would be all zeros, compressed 1000:1.
    chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    out
}

/// A minimal PDF, a few kilobytes long so ranges have something to cut.
pub fn pdf() -> Vec<u8> {
    let mut out = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    for line in 0..200 {
        out.extend_from_slice(
            format!("% filler line {line:04} to give the file some size\n").as_bytes(),
        );
    }
    out.extend_from_slice(b"trailer << /Root 1 0 R >>\n%%EOF\n");
    out
}

/// The smallest PDF the server takes: it fits the socket buffers whole, so a client whose
/// request the server refuses early (before reading it all) still reads the answer.
pub fn small_pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n".to_vec()
}

pub fn text() -> Vec<u8> {
    "Order #4821\nLigne deux: é, 中文, 🦀\n"
        .repeat(50)
        .into_bytes()
}

/// A Windows executable's first bytes (the DOS header).
pub fn exe() -> Vec<u8> {
    let mut bytes = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xFF\xFF\x00\x00".to_vec();
    bytes.resize(2048, 0);
    bytes
}

pub fn html() -> Vec<u8> {
    b"<!DOCTYPE html><html><body><script>fetch('/graphql')</script></body></html>".to_vec()
}

pub fn svg() -> Vec<u8> {
    b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(document.cookie)\"/>".to_vec()
}
