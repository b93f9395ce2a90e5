//! Turns one uploaded file into a [`PreparedFile`]: counted against the size limit while it is
//! read (reading stops the moment the limit is passed), hashed, its type decided from its
//! first bytes as soon as they arrive, checked whole where the type needs it (UTF-8 text, the
//! Word container) and, for images, decoded and re-encoded. The result sits in a temp file,
//! ready for `Storage::put_file`; it is deleted when the `PreparedFile` is dropped, so a
//! refused or failed upload leaves nothing behind.
//!
//! Two ways in: [`prepare_file`] for async-graphql's `UploadValue`, whose multipart part is
//! already spooled into an anonymous temp file (`UploadValue::content`, a `std::fs::File`
//! rewound to the start; its size was already capped by `MultipartOptions::max_file_size`),
//! and [`prepare_reader`] for any `AsyncRead` (a raw request body, the demo seeder).
//! Temp files go to the system temp folder (`TMPDIR`), like async-graphql's own.
//!
//! With a [`Scanner`], [`prepare_file`] streams the bytes to clamd in the same pass that copies
//! them out of the multipart spool, and the verdict is taken before any other whole-file check:
//! the scan costs no second read. ([`prepare_reader`] serves the demo seeder only, with files of
//! our own making, and does not scan.)

use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::docx::check_docx;
use super::images::{ProcessedImage, process_image};
use super::policy::{FilePolicy, SNIFF_BYTES, SniffedType, TextCheck, sanitize_name};
use super::scan::{Scan, Scanner};
use crate::auth::visitor_token::hex;
use crate::error::{Error, Result};

const CHUNK: usize = 64 * 1024;

/// An upload that passed every check, in a temp file, with what the database row needs.
pub struct PreparedFile {
    file: NamedTempFile,
    /// Of the bytes to store (for images, the re-encoded image, not the upload).
    pub size_bytes: u64,
    pub sha256_hex: String,
    pub kind: SniffedType,
    /// The sniffed type, stored as `mime_type` and served as `Content-Type`.
    pub mime_type: &'static str,
    /// Sanitized: safe to keep and to show.
    pub original_name: String,
    /// Dimensions and thumbnail, for images.
    pub image: Option<ProcessedImage>,
}

impl PreparedFile {
    /// The file to hand to `Storage::put_file`.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl std::fmt::Debug for PreparedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedFile")
            .field("path", &self.file.path())
            .field("size_bytes", &self.size_bytes)
            .field("sha256_hex", &self.sha256_hex)
            .field("mime_type", &self.mime_type)
            .field("original_name", &self.original_name)
            .field("image", &self.image)
            .finish()
    }
}

/// An uploaded file as it arrived, nothing checked yet: the name its sender gave, and its bytes
/// already spooled to a file (async-graphql's `UploadValue`, taken apart in `graphql/`).
#[derive(Debug)]
pub struct Received {
    pub name: String,
    pub content: std::fs::File,
}

/// Prepares an upload that is already in a file (async-graphql's `UploadValue::content`).
/// All the work, reading included, runs on the blocking pool.
pub async fn prepare_file(
    policy: &FilePolicy,
    scanner: Option<&Scanner>,
    original_name: &str,
    file: std::fs::File,
) -> Result<PreparedFile> {
    let policy = policy.clone();
    let scanner = scanner.cloned();
    let original_name = original_name.to_owned();
    run_blocking(move || {
        let mut file = file;
        // `UploadValue::try_clone` shares the offset between handles; start from the top.
        file.rewind().map_err(Error::internal)?;
        // The cheap refusal first: the size is already known.
        if file.metadata().map_err(Error::internal)?.len() > policy.max_file_bytes {
            return Err(Error::FileTooLarge {
                max_bytes: policy.max_file_bytes,
            });
        }
        let mut intake = Intake::new(policy, &original_name);
        intake.scan = scanner.map(|scanner| scanner.start());
        let mut spool = BufWriter::new(NamedTempFile::new().map_err(Error::internal)?);
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let read = file.read(&mut buffer).map_err(Error::internal)?;
            if read == 0 {
                break;
            }
            intake.accept(&buffer[..read])?;
            spool.write_all(&buffer[..read]).map_err(Error::internal)?;
        }
        let spooled = spool
            .into_inner()
            .map_err(|error| Error::internal(error.into_error()))?;
        intake.finish(spooled)
    })
    .await
}

/// Prepares an upload read from `reader`, which is never read past the size limit (plus at most
/// one 64 KiB chunk) nor past the first 8 KiB when they show a refused type.
pub async fn prepare_reader(
    policy: &FilePolicy,
    original_name: &str,
    mut reader: impl AsyncRead + Unpin,
) -> Result<PreparedFile> {
    let mut intake = Intake::new(policy.clone(), original_name);
    let spooled = run_blocking(|| NamedTempFile::new().map_err(Error::internal)).await?;
    let handle = spooled.reopen().map_err(Error::internal)?;
    let mut writer = tokio::io::BufWriter::new(tokio::fs::File::from_std(handle));
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = reader.read(&mut buffer).await.map_err(|error| {
            // The client went away or sent a broken body: theirs to retry, not our failure.
            tracing::debug!(error = %error, "reading an upload failed");
            Error::bad_input("the upload was interrupted; send it again")
        })?;
        if read == 0 {
            break;
        }
        intake.accept(&buffer[..read])?;
        writer
            .write_all(&buffer[..read])
            .await
            .map_err(Error::internal)?;
    }
    writer.flush().await.map_err(Error::internal)?;
    drop(writer);
    run_blocking(move || intake.finish(spooled)).await
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::internal)?
}

/// What is learnt from the bytes as they pass.
struct Intake {
    policy: FilePolicy,
    original_name: String,
    size: u64,
    hasher: Sha256,
    head: Vec<u8>,
    kind: Option<SniffedType>,
    text: TextCheck,
    /// The bytes so far went to clamd too.
    scan: Option<Scan>,
}

impl Intake {
    fn new(policy: FilePolicy, original_name: &str) -> Self {
        Self {
            policy,
            original_name: original_name.to_owned(),
            size: 0,
            hasher: Sha256::new(),
            head: Vec::with_capacity(SNIFF_BYTES),
            kind: None,
            text: TextCheck::default(),
            scan: None,
        }
    }

    fn accept(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.policy.max_file_bytes {
            return Err(Error::FileTooLarge {
                max_bytes: self.policy.max_file_bytes,
            });
        }
        self.hasher.update(chunk);
        self.text.feed(chunk);
        if let Some(scan) = &mut self.scan {
            scan.feed(chunk);
        }
        if self.head.len() < SNIFF_BYTES {
            let wanted = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..wanted]);
            if self.head.len() == SNIFF_BYTES {
                // Refuse an executable after 8 KiB, not after 10 MiB.
                self.kind = Some(self.policy.sniff(&self.head, &self.original_name)?);
            }
        }
        Ok(())
    }

    /// The whole file is in `spooled`: run the checks that need all of it.
    fn finish(mut self, spooled: NamedTempFile) -> Result<PreparedFile> {
        if let Some(scan) = self.scan.take() {
            scan.judge(&sanitize_name(&self.original_name))?;
        }
        let kind = match self.kind {
            Some(kind) => kind,
            None => self.policy.sniff(&self.head, &self.original_name)?,
        };
        let original_name = sanitize_name(&self.original_name);
        match kind {
            SniffedType::Text => self.text.finish()?,
            SniffedType::Docx => {
                let mut file = spooled.reopen().map_err(Error::internal)?;
                check_docx(&mut file)?;
            }
            SniffedType::Jpeg | SniffedType::Png | SniffedType::Webp => {
                let input = BufReader::new(spooled.reopen().map_err(Error::internal)?);
                let output = NamedTempFile::new().map_err(Error::internal)?;
                let mut writer = HashingWriter::new(BufWriter::new(output));
                let image = process_image(input, kind, &mut writer)?;
                let (output, size_bytes, sha256_hex) = writer.finish()?;
                // `spooled`, the upload as sent, is dropped and deleted here.
                return Ok(PreparedFile {
                    file: output,
                    size_bytes,
                    sha256_hex,
                    kind,
                    mime_type: kind.mime(),
                    original_name,
                    image: Some(image),
                });
            }
            SniffedType::Pdf | SniffedType::Doc => {}
        }
        Ok(PreparedFile {
            file: spooled,
            size_bytes: self.size,
            sha256_hex: hex(&self.hasher.finalize()),
            kind,
            mime_type: kind.mime(),
            original_name,
            image: None,
        })
    }
}

/// Counts and hashes what goes through, so the re-encoded image's size and hash come for free.
struct HashingWriter {
    inner: BufWriter<NamedTempFile>,
    hasher: Sha256,
    written: u64,
}

impl HashingWriter {
    fn new(inner: BufWriter<NamedTempFile>) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    fn finish(self) -> Result<(NamedTempFile, u64, String)> {
        let file = self
            .inner
            .into_inner()
            .map_err(|error| Error::internal(error.into_error()))?;
        Ok((file, self.written, hex(&self.hasher.finalize())))
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_EXTENSIONS;
    use crate::files::samples;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll};

    fn policy(max_file_bytes: u64) -> FilePolicy {
        FilePolicy::new(max_file_bytes, 3, DEFAULT_EXTENSIONS)
    }

    fn temp_with(bytes: &[u8]) -> std::fs::File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        // Left at the end on purpose: prepare_file must rewind.
        file
    }

    async fn prepare_file_unscanned(
        policy: &FilePolicy,
        name: &str,
        file: std::fs::File,
    ) -> Result<PreparedFile> {
        prepare_file(policy, None, name, file).await
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    /// Counts the bytes handed out, to prove reading stopped.
    struct Counted<R> {
        inner: R,
        count: Arc<AtomicU64>,
    }

    impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
            let read = (buf.filled().len() - before) as u64;
            self.count.fetch_add(read, Ordering::Relaxed);
            poll
        }
    }

    #[tokio::test]
    async fn documents_are_stored_byte_for_byte() {
        for (bytes, name, kind) in [
            (
                samples::pdf(),
                "../../Invoice\u{202E}.pdf",
                SniffedType::Pdf,
            ),
            (samples::docx(), "letter.docx", SniffedType::Docx),
            (samples::doc(), "old.doc", SniffedType::Doc),
            (
                "line one\nligne deux é\n".repeat(1000).into_bytes(),
                "notes.txt",
                SniffedType::Text,
            ),
        ] {
            let prepared = prepare_file_unscanned(&policy(1 << 20), name, temp_with(&bytes))
                .await
                .unwrap();
            assert_eq!(prepared.kind, kind);
            assert_eq!(prepared.mime_type, kind.mime());
            assert_eq!(prepared.size_bytes, bytes.len() as u64);
            assert_eq!(prepared.sha256_hex, sha256_hex(&bytes));
            assert_eq!(std::fs::read(prepared.path()).unwrap(), bytes);
            assert!(prepared.image.is_none());

            let from_reader = prepare_reader(&policy(1 << 20), name, bytes.as_slice())
                .await
                .unwrap();
            assert_eq!(from_reader.sha256_hex, prepared.sha256_hex);
            assert_eq!(std::fs::read(from_reader.path()).unwrap(), bytes);
        }
        let prepared = prepare_file_unscanned(
            &policy(1 << 20),
            "a/b\\..\\Invoice\u{202E}.pdf",
            temp_with(&samples::pdf()),
        )
        .await
        .unwrap();
        assert_eq!(prepared.original_name, "Invoice.pdf");
    }

    #[tokio::test]
    async fn images_are_stored_re_encoded_with_their_own_hash() {
        let input = samples::png_polyglot();
        let prepared = prepare_file_unscanned(&policy(1 << 20), "shot.png", temp_with(&input))
            .await
            .unwrap();
        let stored = std::fs::read(prepared.path()).unwrap();
        assert_ne!(stored, input);
        assert!(!stored.windows(7).any(|w| w == b"<script"));
        assert_eq!(prepared.size_bytes, stored.len() as u64);
        assert_eq!(prepared.sha256_hex, sha256_hex(&stored));
        let image = prepared.image.as_ref().unwrap();
        assert_eq!((image.width, image.height), (40, 30));
        assert!(!image.thumbnail.is_empty());
        assert_eq!(prepared.mime_type, "image/png");
    }

    #[tokio::test]
    async fn an_oversize_file_is_refused() {
        let bytes = vec![b'a'; 1001];
        let refused = prepare_file_unscanned(&policy(1000), "big.txt", temp_with(&bytes)).await;
        assert!(
            matches!(refused, Err(Error::FileTooLarge { max_bytes: 1000 })),
            "{refused:?}"
        );
        let exact = prepare_file_unscanned(&policy(1001), "big.txt", temp_with(&bytes)).await;
        assert!(exact.is_ok(), "{exact:?}");
    }

    #[tokio::test]
    async fn an_endless_stream_is_cut_off_at_the_limit() {
        let count = Arc::new(AtomicU64::new(0));
        let endless = Counted {
            inner: tokio::io::repeat(b'a'),
            count: count.clone(),
        };
        let limit = 3 * 1024 * 1024;
        let refused = prepare_reader(&policy(limit), "endless.txt", endless).await;
        assert!(
            matches!(refused, Err(Error::FileTooLarge { .. })),
            "{refused:?}"
        );
        let read = count.load(Ordering::Relaxed);
        assert!(
            read > limit && read <= limit + CHUNK as u64,
            "read {read} bytes"
        );
    }

    #[tokio::test]
    async fn a_refused_type_is_refused_after_its_first_bytes() {
        let count = Arc::new(AtomicU64::new(0));
        let mut elf = b"\x7FELF\x02\x01\x01\x00".to_vec();
        elf.resize(64, 0);
        let endless = Counted {
            inner: AsyncReadExt::chain(elf.as_slice(), tokio::io::repeat(0)),
            count: count.clone(),
        };
        let refused = prepare_reader(&policy(1 << 30), "tool.pdf", endless).await;
        assert!(
            matches!(refused, Err(Error::UnsupportedFileType(_))),
            "{refused:?}"
        );
        assert!(count.load(Ordering::Relaxed) <= 2 * CHUNK as u64);
    }

    #[tokio::test]
    async fn whole_file_checks_catch_what_the_head_cannot_see() {
        let mut late_binary = "fine text\n".repeat(1000).into_bytes();
        late_binary.extend_from_slice(b"\0\x01\x02");
        let refused =
            prepare_file_unscanned(&policy(1 << 20), "log.txt", temp_with(&late_binary)).await;
        assert!(
            matches!(refused, Err(Error::UnsupportedFileType(_))),
            "{refused:?}"
        );

        let mut late_latin1 = "fine text\n".repeat(1000).into_bytes();
        late_latin1.extend_from_slice(b"caf\xE9");
        let refused = prepare_reader(&policy(1 << 20), "log.txt", late_latin1.as_slice()).await;
        assert!(
            matches!(refused, Err(Error::UnsupportedFileType(_))),
            "{refused:?}"
        );

        let plain_zip = samples::zip(&[("readme.txt", b"hello")]);
        let refused =
            prepare_file_unscanned(&policy(1 << 20), "fake.docx", temp_with(&plain_zip)).await;
        assert!(
            matches!(&refused, Err(Error::UnsupportedFileType(r)) if r.contains("not a Word document")),
            "{refused:?}"
        );

        let refused = prepare_file_unscanned(&policy(1 << 20), "empty.pdf", temp_with(b"")).await;
        assert!(
            matches!(refused, Err(Error::UnsupportedFileType(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn the_temp_file_goes_away_with_the_prepared_file() {
        let prepared =
            prepare_file_unscanned(&policy(1 << 20), "a.pdf", temp_with(&samples::pdf()))
                .await
                .unwrap();
        let path = prepared.path().to_owned();
        assert!(path.exists());
        drop(prepared);
        assert!(!path.exists());
    }
}
