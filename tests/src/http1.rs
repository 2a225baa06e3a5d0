//! A bare HTTP/1.1 client for tests that must see the wire: pipelining, connection reuse,
//! what a proxy adds or drops. One request at a time per call, any byte stream (TCP, TLS).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads one request or response head (through the empty line) from `sock`, keeping any
/// bytes after it in `buf`; `None` at the end of the stream.
pub async fn read_head<S: AsyncRead + Unpin>(sock: &mut S, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 8192];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One response read off a client connection.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first value of a header, by name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends a GET on `sock` and reads its answer (content-length or chunked body).
pub async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    sock: &mut S,
    buf: &mut Vec<u8>,
    path: &str,
) -> Answer {
    let req = format!("GET {path} HTTP/1.1\r\nhost: drgw.test\r\naccept: application/json\r\n\r\n");
    request(sock, buf, req.as_bytes()).await
}

/// Sends a whole request (head and body) on `sock` and reads its answer.
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    sock: &mut S,
    buf: &mut Vec<u8>,
    req: &[u8],
) -> Answer {
    sock.write_all(req).await.expect("write");
    let head = tokio::time::timeout(Duration::from_secs(20), read_head(sock, buf))
        .await
        .expect("an answer in time")
        .expect("an answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let mut answer = Answer {
        status,
        head,
        body: Vec::new(),
    };
    if let Some(len) = answer.header("content-length") {
        let len: usize = len.parse().expect("length");
        while buf.len() < len {
            let mut chunk = [0u8; 65536];
            let n = sock.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed inside a body");
            buf.extend_from_slice(&chunk[..n]);
        }
        answer.body = buf.drain(..len).collect();
    } else if answer
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let line = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    let l = String::from_utf8_lossy(&buf[..i]).into_owned();
                    buf.drain(..i + 2);
                    break l;
                }
                let mut chunk = [0u8; 8192];
                let n = sock.read(&mut chunk).await.expect("read");
                assert!(n > 0, "connection closed inside a chunked body");
                buf.extend_from_slice(&chunk[..n]);
            };
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                .expect("chunk size");
            while buf.len() < size + 2 {
                let mut chunk = [0u8; 8192];
                let n = sock.read(&mut chunk).await.expect("read");
                assert!(n > 0, "connection closed inside a chunk");
                buf.extend_from_slice(&chunk[..n]);
            }
            if size == 0 {
                buf.drain(..2);
                break;
            }
            answer.body.extend(buf.drain(..size));
            buf.drain(..2);
        }
    }
    answer
}
