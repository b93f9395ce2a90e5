//! What may be uploaded: the type is decided from the content (magic bytes via the `infer`
//! crate, plus our own checks where magic bytes are not enough) and the name's extension must
//! agree with it. Everything else is refused with `UNSUPPORTED_FILE_TYPE` and a reason a person
//! can act on.

use crate::config::Settings;
use crate::error::{Error, Result};

/// A type we can verify and serve. Only these ever reach storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SniffedType {
    Jpeg,
    Png,
    Webp,
    Pdf,
    /// An OLE2 compound file. Built without infer's `cfb` feature, so an old Excel or
    /// PowerPoint file named `.doc` passes as well; it is served as a download either way.
    Doc,
    /// A ZIP whose central directory names `word/document.xml`, checked by
    /// [`crate::files::docx::check_docx`].
    Docx,
    /// UTF-8 without NUL bytes that does not start like markup or a script.
    Text,
}

impl SniffedType {
    pub const ALL: [Self; 7] = [
        Self::Jpeg,
        Self::Png,
        Self::Webp,
        Self::Pdf,
        Self::Doc,
        Self::Docx,
        Self::Text,
    ];

    /// The `Content-Type` it is stored and served with.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Pdf => "application/pdf",
            Self::Doc => "application/msword",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Text => "text/plain",
        }
    }

    pub fn from_mime(mime: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.mime() == mime)
    }

    /// Images are decoded, re-encoded and get a thumbnail; they are shown inline.
    pub fn is_image(self) -> bool {
        matches!(self, Self::Jpeg | Self::Png | Self::Webp)
    }

    /// The extensions a file of this type may carry (lower case).
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Jpeg => &["jpg", "jpeg"],
            Self::Png => &["png"],
            Self::Webp => &["webp"],
            Self::Pdf => &["pdf"],
            Self::Doc => &["doc"],
            Self::Docx => &["docx"],
            Self::Text => &["txt"],
        }
    }

    fn from_extension(extension: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.extensions().contains(&extension))
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Jpeg => "a JPEG image",
            Self::Png => "a PNG image",
            Self::Webp => "a WebP image",
            Self::Pdf => "a PDF document",
            Self::Doc => "a Word 97-2003 document",
            Self::Docx => "a Word document or ZIP archive",
            Self::Text => "plain text",
        }
    }
}

/// Upload limits and the allowed types, as `CHATDESK_MAX_FILE_MB`, `CHATDESK_MAX_FILES` and
/// `CHATDESK_ALLOWED_EXTENSIONS` set them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePolicy {
    pub max_file_bytes: u64,
    pub max_files: usize,
    /// Lower case, without dots, each one [`SniffedType`] knows (config refuses others).
    pub allowed_extensions: Vec<String>,
}

/// At most `max` files to a message: the multipart reader asks before spooling any file, the
/// send again for callers that come another way.
pub fn check_count(count: usize, max: usize) -> Result<()> {
    if count > max {
        return Err(Error::TooManyFiles { max });
    }
    Ok(())
}

impl FilePolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        Self::new(
            settings.max_file_bytes,
            settings.max_files,
            settings.allowed_extensions.as_slice(),
        )
    }

    pub fn new(max_file_bytes: u64, max_files: usize, extensions: &[impl AsRef<str>]) -> Self {
        let mut allowed_extensions: Vec<String> = Vec::new();
        for extension in extensions {
            let extension = extension
                .as_ref()
                .trim()
                .trim_start_matches('.')
                .to_ascii_lowercase();
            // An extension we cannot verify is never allowed, whatever the caller passed.
            if SniffedType::from_extension(&extension).is_some()
                && !allowed_extensions.contains(&extension)
            {
                allowed_extensions.push(extension);
            }
        }
        Self {
            max_file_bytes,
            max_files,
            allowed_extensions,
        }
    }

    /// For `uploadPolicy.allowedExtensions`.
    pub fn extensions(&self) -> Vec<String> {
        self.allowed_extensions.clone()
    }

    /// For `uploadPolicy.allowedMimeTypes`, in the order of the extensions, without repeats.
    pub fn mime_types(&self) -> Vec<&'static str> {
        let mut mimes = Vec::new();
        for extension in &self.allowed_extensions {
            if let Some(kind) = SniffedType::from_extension(extension)
                && !mimes.contains(&kind.mime())
            {
                mimes.push(kind.mime());
            }
        }
        mimes
    }

    /// `TOO_MANY_FILES` when a message carries more files than allowed.
    pub fn check_count(&self, count: usize) -> Result<()> {
        check_count(count, self.max_files)
    }

    fn allows(&self, extension: &str) -> bool {
        self.allowed_extensions
            .iter()
            .any(|allowed| allowed == extension)
    }

    /// Decides the type from the first bytes of the file (`head`, up to [`SNIFF_BYTES`]) and
    /// checks that the name's extension agrees and is allowed. For `Text` and `Docx` the caller
    /// must also run the whole-file checks ([`TextCheck`], [`crate::files::docx::check_docx`]); the upload helper
    /// does.
    pub fn sniff(&self, head: &[u8], original_name: &str) -> Result<SniffedType> {
        if head.is_empty() {
            return Err(refuse("the file is empty"));
        }
        let name = sanitize_name(original_name);
        let Some(extension) = extension_of(&name) else {
            return Err(refuse(format!(
                "the file name needs an extension; accepted: {}",
                self.allowed_extensions.join(", ")
            )));
        };
        if !self.allows(&extension) {
            return Err(refuse(format!(
                ".{extension} files are not accepted; accepted: {}",
                self.allowed_extensions.join(", ")
            )));
        }
        let content = detect(head).map_err(|what| {
            refuse(format!(
                "the content is {what}, which is not accepted (the name says .{extension})"
            ))
        })?;
        if !content.extensions().contains(&extension.as_str()) {
            return Err(refuse(format!(
                "the content is {}, but the name ends in .{extension}; rename it to .{} or choose another file",
                content.describe(),
                content.extensions()[0]
            )));
        }
        Ok(content)
    }
}

/// How many leading bytes [`FilePolicy::sniff`] looks at.
pub const SNIFF_BYTES: usize = 8 * 1024;

fn refuse(reason: impl Into<String>) -> Error {
    Error::UnsupportedFileType(reason.into())
}

/// The content's type, or a short description of what it is when it is nothing we accept.
fn detect(head: &[u8]) -> std::result::Result<SniffedType, String> {
    const OLE2: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    if head.starts_with(OLE2) {
        return Ok(SniffedType::Doc);
    }
    let Some(found) = infer::get(head) else {
        return text(head);
    };
    match found.mime_type() {
        "image/jpeg" => Ok(SniffedType::Jpeg),
        "image/png" => Ok(SniffedType::Png),
        "image/webp" => Ok(SniffedType::Webp),
        "application/pdf" => Ok(SniffedType::Pdf),
        // infer only sees the first local headers; a Word file whose first entries are large
        // looks like a plain ZIP here. `check_docx` reads the central directory and decides.
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/zip" => Ok(SniffedType::Docx),
        "text/html" => Err("HTML".into()),
        "text/xml" => Err("XML (such as SVG)".into()),
        "text/x-shellscript" => Err("a script".into()),
        "application/x-executable"
        | "application/vnd.microsoft.portable-executable"
        | "application/x-mach-binary"
        | "application/java"
        | "application/wasm"
        | "application/vnd.android.dex"
        | "application/vnd.android.dey"
        | "application/x-llvm" => Err("an executable program".into()),
        other => Err(format!("of type {other}")),
    }
}

/// Whether the start of a file is plain text we are willing to serve.
fn text(head: &[u8]) -> std::result::Result<SniffedType, String> {
    if head.contains(&0) {
        return Err("binary data".into());
    }
    // The head may end inside a multi-byte character; only a real error counts.
    if let Err(error) = std::str::from_utf8(head)
        && error.error_len().is_some()
    {
        return Err("not UTF-8 text".into());
    }
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let body = body.trim_ascii_start();
    if body.starts_with(b"#!") {
        return Err("a script".into());
    }
    // `<` and then a letter, `!`, `?` or `/` is a tag: HTML, SVG, XML. `<3` is still text.
    if let [b'<', next, ..] = body
        && (next.is_ascii_alphabetic() || matches!(next, b'!' | b'?' | b'/'))
    {
        return Err("HTML or XML markup (such as SVG)".into());
    }
    // Old browsers sniffed HTML anywhere in the first bytes; we serve with nosniff and a
    // sandbox CSP, but a .txt has no business carrying these tags near its start.
    const ACTIVE_TAGS: [&[u8]; 8] = [
        b"<script",
        b"<html",
        b"<svg",
        b"<iframe",
        b"<!doctype",
        b"<?xml",
        b"<object",
        b"<embed",
    ];
    let window = &head[..head.len().min(1024)];
    let lowered = window.to_ascii_lowercase();
    if ACTIVE_TAGS
        .iter()
        .any(|tag| lowered.windows(tag.len()).any(|w| w == *tag))
    {
        return Err("HTML or XML markup (such as SVG)".into());
    }
    Ok(SniffedType::Text)
}

/// Checks a whole text file as it streams past: valid UTF-8 across chunk boundaries, no NUL.
#[derive(Debug, Default)]
pub struct TextCheck {
    /// The start of a character split across chunks (at most 3 bytes).
    pending: Vec<u8>,
    failed: bool,
}

impl TextCheck {
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed || chunk.is_empty() {
            return;
        }
        if chunk.contains(&0) {
            self.failed = true;
            return;
        }
        let mut rest = chunk;
        if !self.pending.is_empty() {
            // Complete the split character with at most 3 more bytes, then go on after it.
            let take = rest.len().min(4 - self.pending.len());
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(&rest[..take]);
            match std::str::from_utf8(&joined) {
                Ok(_) => rest = &rest[take..],
                Err(error) if error.valid_up_to() > 0 => {
                    let used = error.valid_up_to() - (joined.len() - take);
                    rest = &rest[used..];
                }
                Err(error) if error.error_len().is_none() => {
                    // Still incomplete: the chunk was tiny.
                    self.pending = joined;
                    return;
                }
                Err(_) => {
                    self.failed = true;
                    return;
                }
            }
        }
        match std::str::from_utf8(rest) {
            Ok(_) => {}
            Err(error) if error.error_len().is_none() => {
                self.pending = rest[error.valid_up_to()..].to_vec();
            }
            Err(_) => self.failed = true,
        }
    }

    /// At the end of the file: a character still pending is truncated, hence invalid.
    pub fn finish(self) -> Result<()> {
        if self.failed || !self.pending.is_empty() {
            return Err(refuse(
                "the content is not UTF-8 text without NUL bytes, which is what a .txt must be",
            ));
        }
        Ok(())
    }
}

/// A user's file name made safe to keep as data and to show: only the last path component,
/// no control or bidi-override characters (which can make `evil\u{202E}gpj.exe` display as
/// `evilexe.jpg`), no leading or trailing dots and spaces, at most 255 bytes with the
/// extension kept; `file` when nothing is left.
pub fn sanitize_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let cleaned: String = last
        .chars()
        .filter(|c| {
            let bidi = matches!(
                *c,
                '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
            );
            !bidi && !c.is_control()
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() {
        return "file".to_owned();
    }
    const MAX_BYTES: usize = 255;
    if trimmed.len() <= MAX_BYTES {
        return trimmed.to_owned();
    }
    // Keep a sensible extension whole and cut the stem on a character boundary.
    let (stem, extension) = match trimmed.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() && extension.len() <= 16 => {
            (stem, Some(extension))
        }
        _ => (trimmed, None),
    };
    let budget = MAX_BYTES - extension.map_or(0, |extension| extension.len() + 1);
    let mut cut = budget.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = stem[..cut].trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    match extension {
        Some(extension) => format!("{stem}.{extension}"),
        None => stem.to_owned(),
    }
}

/// The lower-cased extension of a (sanitized) name, if it has one after a non-empty stem.
pub fn extension_of(name: &str) -> Option<String> {
    match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() && !extension.is_empty() => {
            Some(extension.to_ascii_lowercase())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_EXTENSIONS;
    use crate::files::docx::check_docx;
    use crate::files::samples::*;
    use std::io::Cursor;

    fn policy() -> FilePolicy {
        FilePolicy::new(10 * 1024 * 1024, 3, DEFAULT_EXTENSIONS)
    }

    #[track_caller]
    fn refused(bytes: &[u8], name: &str, reason_contains: &str) {
        match policy().sniff(bytes, name) {
            Err(Error::UnsupportedFileType(reason)) => {
                assert!(reason.contains(reason_contains), "{name}: {reason}")
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn accepts_each_allowed_type_with_its_extensions() {
        let p = policy();
        assert_eq!(p.sniff(&jpeg(), "photo.jpg").unwrap(), SniffedType::Jpeg);
        assert_eq!(p.sniff(&jpeg(), "photo.JPEG").unwrap(), SniffedType::Jpeg);
        assert_eq!(p.sniff(&png(), "shot.png").unwrap(), SniffedType::Png);
        assert_eq!(p.sniff(&webp(), "pic.webp").unwrap(), SniffedType::Webp);
        assert_eq!(p.sniff(&pdf(), "invoice.pdf").unwrap(), SniffedType::Pdf);
        assert_eq!(p.sniff(&doc(), "old.doc").unwrap(), SniffedType::Doc);
        assert_eq!(p.sniff(&docx(), "letter.docx").unwrap(), SniffedType::Docx);
        assert_eq!(
            p.sniff("héllo wörld\n<3".as_bytes(), "notes.txt").unwrap(),
            SniffedType::Text
        );
        assert_eq!(
            p.sniff(b"\xEF\xBB\xBFhello", "bom.txt").unwrap(),
            SniffedType::Text
        );
        assert_eq!(
            p.sniff(&png(), "C:\\Users\\me\\shot.png").unwrap(),
            SniffedType::Png
        );
    }

    #[test]
    fn the_extension_must_agree_with_the_content() {
        refused(
            &png(),
            "shot.jpg",
            "the content is a PNG image, but the name ends in .jpg",
        );
        refused(&jpeg(), "photo.png", "JPEG");
        refused(&pdf(), "doc.txt", "PDF");
        refused(b"just text", "fake.pdf", "plain text");
        refused(&png(), "no-extension", "needs an extension");
    }

    #[test]
    fn executables_scripts_and_markup_are_refused() {
        let mut mz = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xFF\xFF".to_vec();
        mz.resize(512, 0);
        refused(&mz, "setup.pdf", "an executable program");
        refused(&mz, "setup.exe", ".exe files are not accepted");
        let mut elf = b"\x7FELF\x02\x01\x01\x00".to_vec();
        elf.resize(64, 0);
        elf[16] = 2; // ET_EXEC
        refused(&elf, "tool.txt", "");
        let mut macho = vec![0xCF, 0xFA, 0xED, 0xFE, 0x07, 0x00, 0x00, 0x01];
        macho.resize(64, 0);
        refused(&macho, "app.doc", "");
        refused(b"#!/bin/sh\nrm -rf ~\n", "run.txt", "a script");
        refused(b"  \n#!/usr/bin/env python\n", "run.txt", "a script");
        refused(
            b"<!DOCTYPE html><html><body>hi</body></html>",
            "page.txt",
            "HTML",
        );
        refused(b"\xEF\xBB\xBF  <html>", "page.txt", "HTML");
        refused(
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>",
            "pic.txt",
            "SVG",
        );
        refused(b"<?xml version=\"1.0\"?><svg/>", "pic.txt", "XML");
        refused(b"<script>alert(1)</script>", "x.txt", "HTML");
        refused(
            b"innocent start\n<ScRiPt>alert(1)</script>",
            "x.txt",
            "HTML",
        );
        refused(
            b"<svg onload=alert(1)>",
            "pic.svg",
            ".svg files are not accepted",
        );
        refused(b"<html>", "page.html", ".html files are not accepted");
    }

    #[test]
    fn binary_archives_and_unknown_content_are_refused() {
        refused(b"", "empty.txt", "the file is empty");
        refused(b"text\0with a NUL", "x.txt", "binary data");
        refused(b"\xFF\xFEh\0i\0", "utf16.txt", "");
        refused(b"caf\xE9 latin-1", "latin1.txt", "not UTF-8");
        refused(b"\x1F\x8B\x08\x00\x00\x00\x00\x00", "a.txt", "gzip");
        refused(b"GIF89a\x01\x00\x01\x00", "anim.png", "image/gif");
        let zip_bytes = zip(&[("readme.txt", b"hi")]);
        refused(&zip_bytes, "archive.zip", ".zip files are not accepted");
        // A plain ZIP named .docx gets past the magic bytes, and is stopped by check_docx.
        assert_eq!(
            policy().sniff(&zip_bytes, "fake.docx").unwrap(),
            SniffedType::Docx
        );
        assert!(matches!(
            check_docx(&mut Cursor::new(zip_bytes)),
            Err(Error::UnsupportedFileType(reason)) if reason.contains("not a Word document")
        ));
    }

    #[test]
    fn docx_needs_a_real_word_central_directory() {
        check_docx(&mut Cursor::new(docx())).unwrap();
        let only_document = zip(&[("word/document.xml", b"x")]);
        assert!(check_docx(&mut Cursor::new(only_document)).is_err());
        let macros = zip(&[
            ("[Content_Types].xml", b"x"),
            ("word/document.xml", b"x"),
            ("word/vbaProject.bin", b"x"),
        ]);
        assert!(matches!(
            check_docx(&mut Cursor::new(macros)),
            Err(Error::UnsupportedFileType(reason)) if reason.contains("macros")
        ));
        // A name in a file's data, not in the directory, does not count.
        let smuggled = zip(&[("a.txt", b"word/document.xml [Content_Types].xml")]);
        assert!(check_docx(&mut Cursor::new(smuggled)).is_err());
        // Truncated or garbage tails are refused, never panic.
        let whole = docx();
        for cut in [0, 10, 22, whole.len() / 2, whole.len() - 1] {
            assert!(
                check_docx(&mut Cursor::new(&whole[..cut])).is_err(),
                "cut at {cut}"
            );
        }
        let mut lying = whole.clone();
        let n = lying.len();
        lying[n - 6..n - 2].copy_from_slice(&(u32::MAX - 1).to_le_bytes()); // beyond the file
        assert!(check_docx(&mut Cursor::new(lying)).is_err());
    }

    #[test]
    fn the_allowed_list_is_configurable() {
        let images_only = FilePolicy::new(1, 1, &["png", ".JPG", "exe", "png"]);
        assert_eq!(images_only.extensions(), ["png", "jpg"]);
        assert_eq!(images_only.mime_types(), ["image/png", "image/jpeg"]);
        assert!(images_only.sniff(&png(), "a.png").is_ok());
        assert!(images_only.sniff(&pdf(), "a.pdf").is_err());
        // jpeg content named .jpeg: the type is fine, but .jpeg itself is not on the list.
        assert!(images_only.sniff(&jpeg(), "a.jpeg").is_err());
        assert_eq!(
            policy().mime_types(),
            [
                "image/jpeg",
                "image/png",
                "image/webp",
                "application/pdf",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "text/plain"
            ]
        );
    }

    #[test]
    fn a_png_polyglot_passes_the_sniffer_and_is_neutralised_by_re_encoding() {
        // The magic bytes say PNG, and it is one: the sniffer accepts it. The script after IEND
        // is dropped because images are always decoded and re-encoded (see images.rs tests).
        assert_eq!(
            policy().sniff(&png_polyglot(), "x.png").unwrap(),
            SniffedType::Png
        );
    }

    #[test]
    fn text_check_streams_across_chunk_boundaries() {
        let text = "ascii, é, 中文, 🦀 emoji".as_bytes();
        for split in 1..text.len() {
            for step in [1, 2, 3, 5] {
                let mut check = TextCheck::default();
                check.feed(&text[..split]);
                for chunk in text[split..].chunks(step) {
                    check.feed(chunk);
                }
                assert!(check.finish().is_ok(), "split {split} step {step}");
            }
        }
        let mut truncated = TextCheck::default();
        truncated.feed(&"🦀".as_bytes()[..3]);
        assert!(truncated.finish().is_err());
        let mut invalid = TextCheck::default();
        invalid.feed(b"ok \xC3");
        invalid.feed(b"(");
        assert!(invalid.finish().is_err());
        let mut nul = TextCheck::default();
        nul.feed(b"fine");
        nul.feed(b"\0");
        assert!(nul.finish().is_err());
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_name("C:\\Users\\me\\report.pdf"), "report.pdf");
        assert_eq!(sanitize_name("evil\u{202E}gpj.exe"), "evilgpj.exe");
        assert_eq!(sanitize_name("a\u{2066}b\u{2069}c\u{200F}.txt"), "abc.txt");
        assert_eq!(sanitize_name("nul\0and\x07bell\r\n.txt"), "nulandbell.txt");
        assert_eq!(sanitize_name("  .hidden. . "), "hidden");
        assert_eq!(sanitize_name("dir/"), "file");
        assert_eq!(sanitize_name(".."), "file");
        assert_eq!(sanitize_name(""), "file");
        assert_eq!(sanitize_name("\u{202E}"), "file");
        assert_eq!(sanitize_name("résumé café.docx"), "résumé café.docx");

        let long = format!("{}.pdf", "é".repeat(300));
        let cut = sanitize_name(&long);
        assert!(
            cut.len() <= 255 && cut.ends_with(".pdf"),
            "{} bytes",
            cut.len()
        );
        assert!(cut.starts_with('é'));
        let no_extension = "x".repeat(400);
        assert_eq!(sanitize_name(&no_extension).len(), 255);
        assert_eq!(extension_of("a.tar.GZ").as_deref(), Some("gz"));
        assert_eq!(extension_of("noext"), None);
        assert_eq!(extension_of(".pdf"), None);
    }
}
