//! Is this ZIP a plain Word document? A `.docx` is a ZIP of XML parts, so magic bytes say
//! only "ZIP". We read the central directory at the end of the file (no ZIP crate: the format
//! is small and we need only its directory and two kinds of XML part) and accept it only when:
//!
//! - it names `[Content_Types].xml` and `word/document.xml` (a plain ZIP renamed is refused);
//! - no part is a macro project (`vbaProject.bin`, in any case and under any folder) and no
//!   content type or relationship declares one (`vbaProject`, `macroEnabled`): a macro carrier
//!   is a `.docm` in disguise;
//! - no part is an embedded program (`payload.exe`, `run.hta`, …) or an OLE package
//!   (`oleObject*.bin`, the "Package" object that wraps any file for a double-click);
//! - the sizes it declares stay under [`MAX_UNCOMPRESSED`] in all and [`MAX_RATIO`] times the
//!   file (a zip bomb is refused, not stored for an admin to open).
//!
//! Part names are compared case-insensitively: Word opens `word/VBAPROJECT.BIN` all the same.

use std::io::{Read, Seek, SeekFrom};

use crate::error::{Error, Result};

/// What all parts may add up to, uncompressed.
pub const MAX_UNCOMPRESSED: u64 = 128 * 1024 * 1024;
/// How much larger than the file its parts may claim to be. Word's XML compresses about 10:1;
/// bombs claim thousands.
pub const MAX_RATIO: u64 = 100;
/// The largest XML part we inflate to read (content types, relationships).
const MAX_XML_PART: u64 = 1024 * 1024;

/// Extensions of parts that are programs or scripts, or documents that can carry macros.
const EXECUTABLE_EXTENSIONS: &[&str] = &[
    "exe", "dll", "com", "scr", "pif", "msi", "msp", "bat", "cmd", "ps1", "psm1", "vbs", "vbe",
    "js", "jse", "wsf", "wsh", "hta", "jar", "lnk", "sh", "cpl", "reg", "docm", "dotm", "xlsm",
    "xltm", "xlam", "pptm", "potm", "ppam", "ppsm", "sldm",
];

/// Words that mark macro or OLE-package content in content types and relationships.
const FORBIDDEN_DECLARATIONS: &[&str] = &[
    "vbaproject",
    "macroenabled",
    "vbadata",
    "relationships/oleobject",
    "oleobject",
    "activex",
];

fn refuse(reason: &str) -> Error {
    Error::UnsupportedFileType(reason.to_owned())
}

fn damaged() -> Error {
    refuse("the .docx file is damaged")
}

fn not_word() -> Error {
    refuse("the .docx file is not a Word document")
}

/// One central-directory entry.
struct Part {
    /// Lower-cased.
    name: String,
    method: u16,
    compressed: u64,
    uncompressed: u64,
    local_header: u64,
}

pub fn check_docx(file: &mut (impl Read + Seek)) -> Result<()> {
    let io = |error: std::io::Error| Error::internal(error);
    let length = file.seek(SeekFrom::End(0)).map_err(io)?;
    let parts = central_directory(file, length)?;

    let mut has_content_types = false;
    let mut has_document = false;
    let mut declared = 0u64;
    for part in &parts {
        has_content_types |= part.name == "[content_types].xml";
        has_document |= part.name == "word/document.xml";
        let file_name = part.name.rsplit('/').next().unwrap_or_default();
        if file_name == "vbaproject.bin" || file_name == "vbadata.xml" {
            return Err(refuse("the .docx file contains macros"));
        }
        if file_name.starts_with("oleobject") || part.name.contains("/activex/") {
            return Err(refuse("the .docx file contains an embedded object package"));
        }
        if let Some((_, extension)) = file_name.rsplit_once('.')
            && EXECUTABLE_EXTENSIONS.contains(&extension)
        {
            return Err(refuse("the .docx file contains an embedded program"));
        }
        declared = declared.saturating_add(part.uncompressed);
    }
    if !(has_content_types && has_document) {
        return Err(not_word());
    }
    if declared > MAX_UNCOMPRESSED || declared > length.saturating_mul(MAX_RATIO) {
        return Err(refuse(
            "the .docx file unpacks to far more than its size (a zip bomb?)",
        ));
    }
    for part in parts
        .iter()
        .filter(|part| part.name == "[content_types].xml" || part.name.ends_with(".rels"))
    {
        let text = read_part(file, part)?.to_ascii_lowercase();
        if FORBIDDEN_DECLARATIONS
            .iter()
            .any(|word| text.contains(word))
        {
            return Err(refuse("the .docx file declares macros or embedded objects"));
        }
        let targets_program = text.split("target=\"").skip(1).any(|rest| {
            let target = rest.split('"').next().unwrap_or_default();
            target
                .rsplit_once('.')
                .is_some_and(|(_, extension)| EXECUTABLE_EXTENSIONS.contains(&extension))
        });
        if targets_program {
            return Err(refuse("the .docx file links to an embedded program"));
        }
    }
    Ok(())
}

/// The parts the central directory lists (ZIP64 included).
fn central_directory(file: &mut (impl Read + Seek), length: u64) -> Result<Vec<Part>> {
    let io = |error: std::io::Error| Error::internal(error);
    // The end-of-central-directory record is 22 bytes plus a comment of up to 64 KiB.
    let tail_length = length.min(22 + 65_535);
    let mut tail = vec![0u8; tail_length as usize];
    file.seek(SeekFrom::Start(length - tail_length))
        .map_err(io)?;
    file.read_exact(&mut tail).map_err(io)?;
    let tail_start = length - tail_length;

    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&at| tail[at..].starts_with(b"PK\x05\x06"))
        .ok_or_else(not_word)?;
    let record = &tail[eocd..];
    let mut entries = u64::from(u16_at(record, 10));
    let mut directory_size = u64::from(u32_at(record, 12));
    let mut directory_offset = u64::from(u32_at(record, 16));
    if u16_at(record, 4) != 0 || u16_at(record, 6) != 0 {
        return Err(refuse("the .docx file is split across several disks"));
    }
    if entries == 0xFFFF || directory_size == 0xFFFF_FFFF || directory_offset == 0xFFFF_FFFF {
        // ZIP64: the real numbers are in a record the locator just before this one points to.
        let locator_at = eocd.checked_sub(20).ok_or_else(not_word)?;
        let locator = &tail[locator_at..eocd];
        if !locator.starts_with(b"PK\x06\x07") {
            return Err(not_word());
        }
        let record_offset = u64_at(locator, 8);
        let mut zip64 = [0u8; 56];
        file.seek(SeekFrom::Start(record_offset)).map_err(io)?;
        file.read_exact(&mut zip64).map_err(|_| not_word())?;
        if !zip64.starts_with(b"PK\x06\x06") {
            return Err(not_word());
        }
        entries = u64_at(&zip64, 32);
        directory_size = u64_at(&zip64, 40);
        directory_offset = u64_at(&zip64, 48);
    }
    // The directory lies before the end record; anything else is a damaged or crafted file.
    let directory_end = directory_offset
        .checked_add(directory_size)
        .ok_or_else(not_word)?;
    if directory_end > tail_start + eocd as u64 || entries > 100_000 {
        return Err(damaged());
    }
    let mut directory = vec![0u8; directory_size as usize];
    file.seek(SeekFrom::Start(directory_offset)).map_err(io)?;
    file.read_exact(&mut directory).map_err(io)?;

    let mut parts = Vec::with_capacity(entries as usize);
    let mut at = 0usize;
    for _ in 0..entries {
        let header = directory.get(at..at + 46).ok_or_else(damaged)?;
        if !header.starts_with(b"PK\x01\x02") {
            return Err(damaged());
        }
        let name_length = usize::from(u16_at(header, 28));
        let extra_length = usize::from(u16_at(header, 30));
        let comment_length = usize::from(u16_at(header, 32));
        let name = directory
            .get(at + 46..at + 46 + name_length)
            .ok_or_else(damaged)?;
        let extra = directory
            .get(at + 46 + name_length..at + 46 + name_length + extra_length)
            .ok_or_else(damaged)?;
        let mut part = Part {
            name: String::from_utf8_lossy(name).to_lowercase(),
            method: u16_at(header, 10),
            compressed: u64::from(u32_at(header, 20)),
            uncompressed: u64::from(u32_at(header, 24)),
            local_header: u64::from(u32_at(header, 42)),
        };
        apply_zip64_extra(&mut part, extra);
        parts.push(part);
        at += 46 + name_length + extra_length + comment_length;
    }
    Ok(parts)
}

/// A ZIP64 extra field carries, in this order, whichever of the three sizes/offsets were
/// too large for their 32-bit slots.
fn apply_zip64_extra(part: &mut Part, mut extra: &[u8]) {
    while extra.len() >= 4 {
        let id = u16_at(extra, 0);
        let size = usize::from(u16_at(extra, 2));
        let Some(data) = extra.get(4..4 + size) else {
            return;
        };
        if id == 0x0001 {
            let mut values = data.chunks_exact(8).map(|chunk| u64_at(chunk, 0));
            if part.uncompressed == 0xFFFF_FFFF {
                part.uncompressed = values.next().unwrap_or(u64::MAX);
            }
            if part.compressed == 0xFFFF_FFFF {
                part.compressed = values.next().unwrap_or(u64::MAX);
            }
            if part.local_header == 0xFFFF_FFFF {
                part.local_header = values.next().unwrap_or(u64::MAX);
            }
            return;
        }
        extra = &extra[4 + size..];
    }
}

/// A part's text, inflated up to [`MAX_XML_PART`].
fn read_part(file: &mut (impl Read + Seek), part: &Part) -> Result<String> {
    if part.uncompressed > MAX_XML_PART {
        return Err(refuse("the .docx file has an oversized XML part"));
    }
    let io = |_| damaged();
    let mut local = [0u8; 30];
    file.seek(SeekFrom::Start(part.local_header)).map_err(io)?;
    file.read_exact(&mut local).map_err(io)?;
    if !local.starts_with(b"PK\x03\x04") {
        return Err(damaged());
    }
    let skip = u64::from(u16_at(&local, 26)) + u64::from(u16_at(&local, 28));
    file.seek(SeekFrom::Current(skip as i64)).map_err(io)?;
    let compressed = file.take(part.compressed.min(MAX_XML_PART));
    let mut bytes = Vec::new();
    match part.method {
        0 => compressed
            .take(MAX_XML_PART)
            .read_to_end(&mut bytes)
            .map(|_| ())
            .map_err(io)?,
        8 => flate2::read::DeflateDecoder::new(compressed)
            .take(MAX_XML_PART)
            .read_to_end(&mut bytes)
            .map(|_| ())
            .map_err(io)?,
        _ => return Err(damaged()),
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(eight)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::files::samples::{docx, zip};

    const TYPES: &[u8] = b"<?xml version=\"1.0\"?><Types><Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>";
    const DOCUMENT: &[u8] = b"<?xml version=\"1.0\"?><w:document/>";

    fn reason(bytes: Vec<u8>) -> String {
        match check_docx(&mut Cursor::new(bytes)) {
            Err(Error::UnsupportedFileType(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn word_with(extra: &[(&str, &[u8])]) -> Vec<u8> {
        let mut parts: Vec<(&str, &[u8])> = vec![
            ("[Content_Types].xml", TYPES),
            ("word/document.xml", DOCUMENT),
        ];
        parts.extend_from_slice(extra);
        zip(&parts)
    }

    #[test]
    fn a_plain_word_document_passes() {
        check_docx(&mut Cursor::new(docx())).unwrap();
        check_docx(&mut Cursor::new(word_with(&[(
            "word/media/image1.png",
            b"\x89PNG",
        )])))
        .unwrap();
    }

    #[test]
    fn macro_projects_are_refused_whatever_their_case_or_folder() {
        for name in [
            "word/vbaProject.bin",
            "word/VBAPROJECT.BIN",
            "custom/vbaproject.bin",
            "word/vbaData.xml",
        ] {
            assert!(
                reason(word_with(&[(name, b"x")])).contains("macros"),
                "{name}"
            );
        }
    }

    #[test]
    fn macros_declared_under_another_name_are_refused() {
        let types = b"<Types><Default Extension=\"bin\" ContentType=\"application/vnd.ms-office.vbaProject\"/></Types>";
        let bytes = zip(&[
            ("[Content_Types].xml", types),
            ("word/document.xml", DOCUMENT),
            ("word/innocent.dat", b"x"),
        ]);
        assert!(reason(bytes).contains("declares macros"));
        let types = b"<Types><Override ContentType=\"application/vnd.ms-word.document.macroEnabled.main+xml\"/></Types>";
        let bytes = zip(&[
            ("[Content_Types].xml", types),
            ("word/document.xml", DOCUMENT),
        ]);
        assert!(reason(bytes).contains("declares macros"));
        let rels = b"<Relationships><Relationship Type=\"http://schemas.microsoft.com/office/2006/relationships/vbaProject\" Target=\"stuff.dat\"/></Relationships>";
        let bytes = word_with(&[
            ("word/_rels/document.xml.rels", rels),
            ("word/stuff.dat", b"x"),
        ]);
        assert!(reason(bytes).contains("declares macros"));
    }

    #[test]
    fn embedded_programs_and_ole_packages_are_refused() {
        for name in [
            "word/payload.exe",
            "run.hta",
            "word/media/Setup.EXE",
            "a/b.docm",
        ] {
            assert!(
                reason(word_with(&[(name, b"MZ")])).contains("embedded program"),
                "{name}"
            );
        }
        assert!(
            reason(word_with(&[("word/embeddings/oleObject1.bin", b"x")]))
                .contains("object package")
        );
        let rels = b"<Relationships><Relationship Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/image\" Target=\"media/evil.scr\"/></Relationships>";
        assert!(reason(word_with(&[("word/_rels/document.xml.rels", rels)])).contains("program"));
    }

    #[test]
    fn parts_claiming_to_unpack_far_beyond_the_file_are_refused() {
        let mut bomb = word_with(&[("word/media/big.png", b"tiny")]);
        // Rewrite the declared uncompressed size of the last central entry to 1 GiB.
        let directory = bomb
            .windows(4)
            .rposition(|window| window == b"PK\x01\x02")
            .unwrap();
        bomb[directory + 24..directory + 28].copy_from_slice(&(1u32 << 30).to_le_bytes());
        assert!(reason(bomb).contains("zip bomb"));
    }

    #[test]
    fn deflated_content_types_are_read() {
        use std::io::Write;
        let types =
            b"<Types><Default ContentType=\"application/vnd.ms-office.vbaProject\"/></Types>";
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(types).unwrap();
        let deflated = encoder.finish().unwrap();
        let mut bytes = zip(&[
            ("[Content_Types].xml", &deflated),
            ("word/document.xml", DOCUMENT),
        ]);
        // Mark the first entry deflated (method 8) in its local and central headers, with its
        // true uncompressed size.
        bytes[8] = 8;
        let central = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        bytes[central + 10] = 8;
        bytes[central + 24..central + 28].copy_from_slice(&(types.len() as u32).to_le_bytes());
        assert!(reason(bytes).contains("declares macros"));
    }
}
