//! The backend of `make bench`: answers every request 200 with a tiny body,
//! HTTP/1.1 keep-alive, thread per connection. Loopback only.
//!
//!   cargo run --release --example upstream -- 127.0.0.1:18000

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};

#[path = "../support/http1.rs"]
mod http1;

fn serve(stream: TcpStream) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut w = stream.try_clone()?;
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    while let Some(head) = http1::read_head(&mut r)? {
        http1::read_body(&mut r, &head)?;
        w.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}")?;
    }
    Ok(())
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
