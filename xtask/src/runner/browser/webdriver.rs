//! A minimal WebDriver client: JSON over HTTP/1.1 on a local socket, one
//! connection per command (`Connection: close`). Enough to open a page in
//! chromedriver, run a script and read the browser's console log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub struct Client {
    port: u16,
}

impl Client {
    pub fn new(port: u16) -> Client {
        Client { port }
    }

    /// Sends one command; the `value` of the answer, or the driver's error.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .with_context(|| format!("cannot reach the WebDriver on port {}", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let raw = read_answer(&mut stream)?;
        let (status, json) = parse_response(&raw)?;
        let answer: Value = serde_json::from_slice(&json)
            .with_context(|| format!("{method} {path}: the answer is not JSON"))?;
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if status != 200 {
            let error = value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let message = value.get("message").and_then(Value::as_str).unwrap_or("");
            let message = message.lines().next().unwrap_or("");
            bail!("{method} {path}: {status} {error}: {message}");
        }
        Ok(value)
    }
}

/// Reads one answer: up to its `Content-Length`, the last chunk, or the end
/// of the stream (a driver may keep the connection open).
fn read_answer(stream: &mut impl Read) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let length = head.lines().find_map(|l| {
                l.strip_prefix("content-length:")?
                    .trim()
                    .parse::<usize>()
                    .ok()
            });
            match length {
                Some(n) if raw.len() >= split + 4 + n => return Ok(raw),
                None if head.contains("chunked") && raw.ends_with(b"0\r\n\r\n") => {
                    return Ok(raw);
                }
                _ => {}
            }
        }
        let n = stream
            .read(&mut buf)
            .context("reading the WebDriver's answer")?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The status code and body of an HTTP/1.1 answer (plain or chunked).
pub fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>)> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the WebDriver's answer has no header end")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the WebDriver's answer has no status")?;
    let body = &raw[split + 4..];
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunk has no size line")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size =
            usize::from_str_radix(size_text.trim(), 16).context("a chunk size is not hex")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        out.extend_from_slice(rest.get(..size).context("a chunk is cut short")?);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_answers_are_read() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"value\":nul}";
        assert_eq!(
            parse_response(plain).unwrap(),
            (200, b"{\"value\":nul}".to_vec())
        );
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (404, b"abcde".to_vec()));
        assert!(parse_response(b"garbage").is_err());
    }
}
