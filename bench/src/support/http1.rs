//! Minimal HTTP/1.1 request reading shared by the benchmark's servers.
// Each server reads the parts it needs.
#![allow(dead_code)]

use std::io::{self, BufRead};

pub struct Head {
    pub method: String,
    pub path: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    content_length: usize,
    chunked: bool,
}

/// The request line and headers; `None` at a clean end of the connection.
pub fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut head = Head { method, path, headers: Vec::new(), content_length: 0, chunked: false };
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line == "\r\n" {
            return Ok(Some(head));
        }
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "content-length" {
                head.content_length = v.parse().unwrap_or(0);
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                head.chunked = true;
            }
            head.headers.push((k, v));
        }
    }
}

/// The body (Content-Length or chunked, trailers ignored).
pub fn read_body(r: &mut impl BufRead, head: &Head) -> io::Result<Vec<u8>> {
    if !head.chunked {
        let mut body = vec![0u8; head.content_length];
        r.read_exact(&mut body)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        line.clear();
        r.read_line(&mut line)?; // CRLF after the chunk, or the end of the (empty) trailers
        if size == 0 {
            return Ok(body);
        }
    }
}
