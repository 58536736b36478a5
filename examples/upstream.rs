//! The backend of `make bench`: answers every request 200 with a tiny body,
//! HTTP/1.1 keep-alive, thread per connection. Loopback only.
//!
//!   cargo run --release --example upstream -- 127.0.0.1:18000

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

fn serve(stream: TcpStream) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut w = stream.try_clone()?;
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    let mut line = String::new();
    let mut sink = vec![0u8; 64 * 1024];
    loop {
        let mut len = 0usize;
        let mut chunked = false;
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked") {
                    chunked = true;
                }
            }
        }
        if chunked {
            loop {
                line.clear();
                r.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
                let mut left = size + 2;
                while left > 0 {
                    let n = left.min(sink.len());
                    r.read_exact(&mut sink[..n])?;
                    left -= n;
                }
                if size == 0 {
                    break;
                }
            }
        } else {
            while len > 0 {
                let n = len.min(sink.len());
                r.read_exact(&mut sink[..n])?;
                len -= n;
            }
        }
        w.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}")?;
    }
}

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18000".to_string());
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("upstream: bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("upstream listening on {addr}");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = serve(stream);
        });
    }
}
