//! The little of HTTP/1.1 the load clients need: one `GET` on a fresh connection, the response
//! head, then the body, chunked or delimited by the connection's close, handed over as it
//! arrives.
//!
//! A client is one task reading its socket and parsing what it reads in place. A general
//! HTTP client runs the connection in a task of its own and passes each body frame to the
//! reader through a channel: two task wake-ups per read instead of one, which in a saturation
//! run makes the clients, sharing the cores with the server, the bottleneck.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest response head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// The longest chunk-size line accepted (the size and any extensions).
const MAX_SIZE_LINE: usize = 1024;
/// Bytes read from the socket at once (ten thousand clients hold one each).
const READ_BUFFER: usize = 16 * 1024;

/// A response whose head has been read; [`Response::read_body`] reads the rest.
pub struct Response {
    stream: TcpStream,
    /// The status code.
    pub status: u16,
    chunked: bool,
    /// Read past the head: the body's first bytes.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// Sends `GET path` with `headers` (name and value pairs) and reads the response head.
pub async fn get(
    mut stream: TcpStream,
    path: &str,
    headers: &[(&str, &[u8])],
) -> io::Result<Response> {
    let mut request = Vec::with_capacity(256);
    request.extend_from_slice(b"GET ");
    request.extend_from_slice(path.as_bytes());
    request.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if !value
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(io::Error::other(format!(
                "the {name} header's value is invalid"
            )));
        }
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).await?;

    let mut buf = vec![0; READ_BUFFER];
    let mut end = 0;
    let head_len = loop {
        if let Some(at) = memchr::memmem::find(&buf[..end], b"\r\n\r\n") {
            break at + 4;
        }
        if end >= MAX_HEAD {
            return Err(io::Error::other("response head over 8 KiB"));
        }
        match stream.read(&mut buf[end..]).await? {
            0 => {
                return Err(io::Error::other(
                    "connection closed before the response head",
                ));
            }
            n => end += n,
        }
    };
    let (status, chunked) = parse_head(&buf[..head_len])?;
    Ok(Response {
        stream,
        status,
        chunked,
        buf,
        start: head_len,
        end,
    })
}

/// The status code of a response head, and whether its body is chunked.
fn parse_head(head: &[u8]) -> io::Result<(u16, bool)> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.trim_ascii_end());
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix(b"HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other("malformed status line"))?;
    let mut chunked = false;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value
                .split(|&b| b == b',')
                .any(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"content-length") {
            return Err(io::Error::other("a stream response with a Content-Length"));
        }
    }
    Ok((status, chunked))
}

impl Response {
    /// Reads the body to its end, handing each run of body bytes to `data` as it arrives.
    /// Returns when the body ends (the last chunk, or the connection's close); an error from
    /// `data` stops the reading and is returned.
    pub async fn read_body(
        mut self,
        mut data: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut decoder = self.chunked.then(ChunkedDecoder::default);
        loop {
            let input = &self.buf[self.start..self.end];
            match decoder.as_mut() {
                Some(decoder) => {
                    self.start += decoder.decode(input, &mut data)?;
                    if decoder.is_done() {
                        return Ok(());
                    }
                }
                None => {
                    if !input.is_empty() {
                        data(input)?;
                    }
                    self.start = self.end;
                }
            }
            // What is left is part of a chunk-size line or of a chunk's closing CRLF.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            match self.stream.read(&mut self.buf[self.end..]).await? {
                0 if decoder.is_some() => {
                    return Err(io::Error::other("connection closed inside a chunked body"));
                }
                0 => return Ok(()),
                n => self.end += n,
            }
        }
    }
}

/// Where a chunked body's decoding stands.
#[derive(Default, Debug, PartialEq)]
enum ChunkState {
    /// Before a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk, with this many bytes still to come.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk (trailers, if any, are not read).
    Done,
}

/// The `chunked` transfer coding's decoder (RFC 9112, section 7.1), fed with whatever was
/// read so far.
#[derive(Default, Debug)]
struct ChunkedDecoder {
    state: ChunkState,
}

impl ChunkedDecoder {
    fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes what it can of `input`, handing the body bytes to `data`; returns how many
    /// bytes of `input` it used. The rest (part of a size line or of a CRLF) is to be given
    /// again with more bytes after it.
    fn decode(
        &mut self,
        input: &[u8],
        data: &mut impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            match self.state {
                ChunkState::Size => {
                    let Some(line_end) = memchr::memmem::find(rest, b"\r\n") else {
                        if rest.len() > MAX_SIZE_LINE {
                            return Err(io::Error::other("chunk-size line over 1 KiB"));
                        }
                        return Ok(at);
                    };
                    let size = chunk_size(&rest[..line_end])?;
                    at += line_end + 2;
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        return Ok(at);
                    }
                    let take =
                        usize::try_from(left).map_or(rest.len(), |left| left.min(rest.len()));
                    data(&rest[..take])?;
                    at += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(at);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(io::Error::other("chunk data not followed by CRLF"));
                    }
                    at += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Done => return Ok(at),
            }
        }
    }
}

/// The size of a chunk-size line (hexadecimal digits, then optional `;` extensions).
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() {
        return Err(io::Error::other("empty chunk size"));
    }
    digits.iter().try_fold(0u64, |size, &b| {
        let digit = char::from(b)
            .to_digit(16)
            .ok_or_else(|| io::Error::other("chunk size is not hexadecimal"))?;
        size.checked_mul(16)
            .and_then(|size| size.checked_add(u64::from(digit)))
            .ok_or_else(|| io::Error::other("chunk size overflows"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` fed in pieces of `step` bytes (keeping what the decoder left, as the
    /// reader does); returns the body and whether the last chunk was seen.
    fn decode_in_steps(wire: &[u8], step: usize) -> io::Result<(Vec<u8>, bool)> {
        let mut decoder = ChunkedDecoder::default();
        let mut body = Vec::new();
        let mut held: Vec<u8> = Vec::new();
        for piece in wire.chunks(step) {
            held.extend_from_slice(piece);
            let used = decoder.decode(&held, &mut |data: &[u8]| {
                body.extend_from_slice(data);
                Ok(())
            })?;
            held.drain(..used);
        }
        Ok((body, decoder.is_done()))
    }

    #[test]
    fn decodes_chunks_split_anywhere() {
        let wire = b"5\r\nhello\r\n1;name=value\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n";
        for step in 1..=wire.len() {
            let (body, done) = decode_in_steps(wire, step).expect("valid chunks");
            assert_eq!(body, b"hello 0123456789", "step {step}");
            assert!(done, "step {step}");
        }
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (body, done) = decode_in_steps(b"3\r\nabc\r\n4\r\nde", 64).expect("valid so far");
        assert_eq!(body, b"abcde");
        assert!(!done);
    }

    #[test]
    fn refuses_malformed_chunks() {
        for wire in [
            &b"\r\nabc"[..],
            b"xyz\r\nabc\r\n",
            b"3\r\nabcX\r\n",
            b"11111111111111111\r\n",
            &[b'1'; 2000],
        ] {
            assert!(decode_in_steps(wire, 7).is_err(), "{wire:?}");
        }
    }

    #[test]
    fn reads_status_and_coding_from_the_head() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                     Transfer-Encoding: gzip, Chunked\r\n\r\n";
        assert_eq!(parse_head(head).expect("valid head"), (200, true));
        let head = b"HTTP/1.1 503 Service Unavailable\r\n\r\n";
        assert_eq!(parse_head(head).expect("valid head"), (503, false));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n").is_err());
        assert!(parse_head(b"SIP/2.0 200 OK\r\n\r\n").is_err());
    }
}
