//! Virus scanning with ClamAV's daemon over its `INSTREAM` command: the upload's bytes are
//! sent as length-prefixed chunks while they are copied out of the multipart spool (so the
//! scan costs no extra read of the file), then clamd answers `stream: OK` or
//! `stream: <signature> FOUND`. The protocol is four lines of code, so it is written here on
//! plain sockets rather than taken from a crate; it runs on the blocking pool, where the upload
//! is already being read.
//!
//! A scan that cannot finish (clamd down, slow, or refusing the stream) fails closed: the upload
//! is refused as `UNAVAILABLE`, unless `CHATDESK_CLAMD_FAIL_OPEN=true`, which stores it unscanned
//! and logs a warning.

use std::io::{Read, Write};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::config::Settings;
use crate::error::{Error, Result};

/// Where clamd listens: `tcp://host:port` or `unix:/path/to/clamd.ctl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClamdAddress {
    Tcp(String),
    Unix(PathBuf),
}

impl FromStr for ClamdAddress {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if let Some(address) = value.strip_prefix("tcp://") {
            let address = address.trim_end_matches('/');
            match address.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(Self::Tcp(address.to_owned()))
                }
                _ => Err(format!("expected tcp://host:port, got '{value}'")),
            }
        } else if let Some(path) = value.strip_prefix("unix:") {
            // `unix:/run/clamd.ctl` and `unix:///run/clamd.ctl` both name an absolute path.
            let path = path.trim_start_matches("//");
            if path.starts_with('/') {
                Ok(Self::Unix(PathBuf::from(path)))
            } else {
                Err(format!("expected unix:/absolute/path, got '{value}'"))
            }
        } else {
            Err(format!(
                "expected tcp://host:port or unix:/path/to/clamd.ctl, got '{value}'"
            ))
        }
    }
}

/// clamd answers at most this much: `stream: <signature name> FOUND`.
const MAX_REPLY: u64 = 4096;

/// How uploads are scanned, when `CHATDESK_CLAMD_URL` is set.
#[derive(Clone, Debug)]
pub struct Scanner {
    address: ClamdAddress,
    /// For connecting and for each read or write; clamd's verdict comes within it after the last
    /// chunk.
    timeout: Duration,
    fail_open: bool,
}

impl Scanner {
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        settings.clamd_url.clone().map(|address| Self {
            address,
            timeout: Duration::from_secs(settings.clamd_timeout_secs.max(1)),
            fail_open: settings.clamd_fail_open,
        })
    }

    fn connect(&self) -> std::io::Result<Box<dyn Connection>> {
        match &self.address {
            ClamdAddress::Tcp(address) => {
                let mut last_error = None;
                for socket in std::net::ToSocketAddrs::to_socket_addrs(address)? {
                    match TcpStream::connect_timeout(&socket, self.timeout) {
                        Ok(stream) => {
                            stream.set_read_timeout(Some(self.timeout))?;
                            stream.set_write_timeout(Some(self.timeout))?;
                            stream.set_nodelay(true)?;
                            return Ok(Box::new(stream));
                        }
                        Err(error) => last_error = Some(error),
                    }
                }
                Err(last_error.unwrap_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address for clamd")
                }))
            }
            #[cfg(unix)]
            ClamdAddress::Unix(path) => {
                let stream = UnixStream::connect(path)?;
                stream.set_read_timeout(Some(self.timeout))?;
                stream.set_write_timeout(Some(self.timeout))?;
                Ok(Box::new(stream))
            }
            #[cfg(not(unix))]
            ClamdAddress::Unix(_) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "unix sockets need a Unix system",
            )),
        }
    }

    /// Starts a scan. A failure to connect is kept and reported by [`Scan::verdict`], so the
    /// caller has one place to decide.
    pub fn start(&self) -> Scan {
        let connection = self.connect().and_then(|mut connection| {
            connection.write_all(b"zINSTREAM\0")?;
            Ok(connection)
        });
        Scan {
            connection,
            fail_open: self.fail_open,
        }
    }

    /// Whether clamd answers `PING`, for `/readyz`. Blocking: call it off the async runtime.
    pub fn ping(&self) -> std::io::Result<()> {
        let mut connection = self.connect()?;
        connection.write_all(b"zPING\0")?;
        let reply = read_reply(connection.as_mut())?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("clamd answered {reply:?}")))
        }
    }

    pub fn fail_open(&self) -> bool {
        self.fail_open
    }
}

trait Connection: Read + Write + Send {}
impl<T: Read + Write + Send> Connection for T {}

/// One file on its way to clamd.
pub struct Scan {
    connection: std::io::Result<Box<dyn Connection>>,
    fail_open: bool,
}

/// What clamd said about one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The signature's name: logged, never shown to the uploader.
    Infected(String),
    /// The scan could not finish; why, for the log.
    Failed(String),
}

impl Scan {
    /// Sends the next bytes of the file. After a failure the rest is skipped.
    pub fn feed(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        if let Ok(connection) = &mut self.connection {
            // Chunks are at most 64 KiB here, far under clamd's StreamMaxLength.
            let length = u32::try_from(chunk.len()).unwrap_or(u32::MAX).to_be_bytes();
            let sent = connection
                .write_all(&length)
                .and_then(|()| connection.write_all(chunk));
            if let Err(error) = sent {
                self.connection = Err(error);
            }
        }
    }

    /// Ends the stream and reads clamd's answer.
    pub fn verdict(self) -> Verdict {
        let mut connection = match self.connection {
            Ok(connection) => connection,
            Err(error) => return Verdict::Failed(format!("sending to clamd failed: {error}")),
        };
        let reply = connection
            .write_all(&0u32.to_be_bytes())
            .and_then(|()| read_reply(connection.as_mut()));
        match reply {
            Err(error) => Verdict::Failed(format!("no answer from clamd: {error}")),
            Ok(reply) => parse_reply(&reply),
        }
    }

    /// The verdict as the upload's outcome: a detection refuses the file (named, without the
    /// signature), a failed scan refuses it too unless the scanner fails open.
    pub fn judge(self, file_name: &str) -> Result<()> {
        let fail_open = self.fail_open;
        match self.verdict() {
            Verdict::Clean => Ok(()),
            Verdict::Infected(signature) => {
                tracing::warn!(file = file_name, signature, "an upload carried malware");
                metrics::counter!("uploads_infected_total").increment(1);
                Err(Error::VirusDetected {
                    file_name: file_name.to_owned(),
                })
            }
            Verdict::Failed(why) if fail_open => {
                tracing::warn!(
                    file = file_name,
                    why,
                    "stored an upload unscanned (CHATDESK_CLAMD_FAIL_OPEN)"
                );
                metrics::counter!("uploads_unscanned_total").increment(1);
                Ok(())
            }
            Verdict::Failed(why) => Err(Error::Unavailable(anyhow::anyhow!(
                "virus scan of an upload failed: {why}"
            ))),
        }
    }
}

/// Reads up to the NUL that ends a reply in clamd's `z` command mode.
fn read_reply(connection: &mut dyn Connection) -> std::io::Result<String> {
    let mut reply = Vec::new();
    connection.take(MAX_REPLY).read_to_end(&mut reply)?;
    if let Some(end) = reply.iter().position(|byte| *byte == 0) {
        reply.truncate(end);
    }
    Ok(String::from_utf8_lossy(&reply).trim().to_owned())
}

fn parse_reply(reply: &str) -> Verdict {
    let answer = reply.strip_prefix("stream:").unwrap_or(reply).trim();
    if answer == "OK" {
        Verdict::Clean
    } else if let Some(signature) = answer.strip_suffix(" FOUND") {
        Verdict::Infected(signature.trim().to_owned())
    } else {
        // "INSTREAM size limit exceeded. ERROR" and the like.
        Verdict::Failed(format!("clamd answered {reply:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "tcp://127.0.0.1:3310".parse(),
            Ok(ClamdAddress::Tcp("127.0.0.1:3310".into()))
        );
        assert_eq!(
            "tcp://clamav:3310/".parse(),
            Ok(ClamdAddress::Tcp("clamav:3310".into()))
        );
        assert_eq!(
            "unix:/run/clamav/clamd.ctl".parse(),
            Ok(ClamdAddress::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(
            "unix:///run/clamav/clamd.ctl".parse(),
            Ok(ClamdAddress::Unix("/run/clamav/clamd.ctl".into()))
        );
        for bad in ["clamd:3310", "tcp://nohost", "tcp://:3310", "unix:relative"] {
            assert!(bad.parse::<ClamdAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply("stream: OK"), Verdict::Clean);
        assert_eq!(
            parse_reply("stream: Eicar-Signature FOUND"),
            Verdict::Infected("Eicar-Signature".into())
        );
        assert!(matches!(
            parse_reply("INSTREAM size limit exceeded. ERROR"),
            Verdict::Failed(_)
        ));
        assert!(matches!(parse_reply(""), Verdict::Failed(_)));
    }

    #[test]
    fn an_unreachable_clamd_fails_the_scan() {
        let scanner = Scanner {
            address: ClamdAddress::Unix("/nonexistent/clamd.ctl".into()),
            timeout: Duration::from_secs(1),
            fail_open: false,
        };
        let mut scan = scanner.start();
        scan.feed(b"hello");
        assert!(matches!(scan.judge("a.txt"), Err(Error::Unavailable(_))));
        let open = Scanner {
            fail_open: true,
            ..scanner
        };
        assert!(open.start().judge("a.txt").is_ok());
    }
}
