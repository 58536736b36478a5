//! Closed-loop HTTP/1.1 load generator for `make bench` (loopback only).
//!
//! Pre-signs `--count` distinct deliveries (so replay protection sees no
//! duplicates), then keeps `--connections` keep-alive connections busy for at
//! most `--duration` seconds or until every delivery was sent once, and prints
//! one JSON line: requests/s, p50/p99 latency (µs), status counts.
//!
//!   cargo run --release --example loadgen -- --addr 127.0.0.1:10000 --body-size 1024

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use combo_webhook_filter::rules::scheme::{sign_generic, Key};

struct Args {
    addr: SocketAddr,
    path: String,
    secret: String,
    body_size: usize,
    count: usize,
    connections: usize,
    duration: f64,
    warmup: f64,
    bad_signature: bool,
    /// The body's `action` (the shipped configs' triggers match on it).
    action: String,
    /// Plain `GET {path}` requests: pass-through traffic.
    get: bool,
    /// Offered load in requests per second over all connections (0: as fast
    /// as the proxy answers): latency at a given load, not at saturation.
    rate: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:10000".parse().map_err(|e| format!("{e}"))?,
        path: "/v1/webhook/generic/trg_bench".into(),
        secret: "bench-secret".into(),
        body_size: 1024,
        count: 50_000,
        connections: 16,
        duration: 6.0,
        warmup: 1.0,
        bad_signature: false,
        action: "go".into(),
        get: false,
        rate: 0.0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--bad-signature" {
            a.bad_signature = true;
            continue;
        }
        if flag == "--get" {
            a.get = true;
            continue;
        }
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("bad value for {flag}: {v}");
        match flag.as_str() {
            "--addr" => a.addr = v.parse().map_err(|_| format!("bad --addr {v}"))?,
            "--path" => a.path = v.clone(),
            "--action" => a.action = v.clone(),
            "--secret" => a.secret = v.clone(),
            "--body-size" => a.body_size = v.parse().map_err(bad)?,
            "--count" => a.count = v.parse().map_err(bad)?,
            "--connections" => a.connections = v.parse().map_err(bad)?,
            "--duration" => a.duration = v.parse().map_err(|_| format!("bad --duration {v}"))?,
            "--warmup" => a.warmup = v.parse().map_err(|_| format!("bad --warmup {v}"))?,
            "--rate" => a.rate = v.parse().map_err(|_| format!("bad --rate {v}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !a.addr.ip().is_loopback() {
        return Err("the load generator only targets loopback addresses".into());
    }
    Ok(a)
}

/// A distinct 1-line JSON delivery of exactly `size` bytes, signed now.
fn delivery(a: &Args, secret: &Key, i: usize, ts: i64) -> Vec<u8> {
    if a.get {
        return format!("GET {}?i={i} HTTP/1.1\r\nhost: bench\r\n\r\n", a.path).into_bytes();
    }
    let head = format!(
        r#"{{"action":"{}","id":"d{i:010}","ticket":{{"id":{i},"priority":"high","customer":"c{i}"}},"pad":""#,
        a.action
    );
    let pad = a.body_size.saturating_sub(head.len() + 2);
    let mut body = head.into_bytes();
    body.extend(std::iter::repeat_n(b'x', pad));
    body.extend_from_slice(b"\"}");
    let mut sig = sign_generic(secret, ts, &body).unwrap_or_default();
    if a.bad_signature {
        sig = format!("sha256={}", "0".repeat(64));
    }
    let mut req = format!(
        "POST {} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-combo-timestamp: {ts}\r\nx-combo-signature: {sig}\r\n\r\n",
        a.path,
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req
}

/// Reads one response; returns its status.
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(status)
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let secret = Key::hmac_sha256("bench", a.secret.as_bytes());
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let requests: Arc<Vec<Vec<u8>>> = Arc::new((0..a.count).map(|i| delivery(&a, &secret, i, ts)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let warm_until = start + Duration::from_secs_f64(a.warmup);
    let stop_at = warm_until + Duration::from_secs_f64(a.duration);
    // Paced: each connection sends on its own schedule, staggered.
    let interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(a.connections as f64 / a.rate));
    let handles: Vec<_> = (0..a.connections)
        .map(|c| {
            let (requests, next, addr) = (Arc::clone(&requests), Arc::clone(&next), a.addr);
            let offset = interval.map(|i| i.mul_f64(c as f64 / a.connections as f64));
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut statuses = BTreeMap::new();
                let mut last = None;
                let Ok(stream) = TcpStream::connect(addr) else { return (lat, statuses, last) };
                let _ = stream.set_nodelay(true);
                let Ok(mut w) = stream.try_clone() else { return (lat, statuses, last) };
                let mut r = BufReader::with_capacity(64 * 1024, stream);
                let mut slot = start + offset.unwrap_or_default();
                loop {
                    if let Some(i) = interval {
                        let now = Instant::now();
                        if slot > now {
                            std::thread::sleep(slot - now);
                        }
                        slot += i;
                    }
                    let now = Instant::now();
                    if now >= stop_at {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(req) = requests.get(i) else { break };
                    let t0 = Instant::now();
                    if w.write_all(req).is_err() {
                        break;
                    }
                    let Ok(status) = read_response(&mut r) else { break };
                    if t0 >= warm_until {
                        lat.push(t0.elapsed().as_micros() as u32);
                        *statuses.entry(status).or_insert(0usize) += 1;
                        last = Some(Instant::now());
                    }
                }
                (lat, statuses, last)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut ended = warm_until;
    for h in handles {
        if let Ok((l, s, last)) = h.join() {
            ended = ended.max(last.unwrap_or(warm_until));
            lat.extend(l);
            for (k, v) in s {
                *statuses.entry(k).or_insert(0) += v;
            }
        }
    }
    let measured = ended.saturating_duration_since(warm_until).as_secs_f64().max(1e-9);
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    let statuses: Vec<String> = statuses.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!(
        "{{\"requests\":{},\"sent\":{},\"seconds\":{:.3},\"rps\":{:.1},\"p50_us\":{},\"p99_us\":{},\"statuses\":{{{}}},\"exhausted\":{}}}",
        lat.len(),
        next.load(Ordering::Relaxed).min(requests.len()),
        measured,
        lat.len() as f64 / measured,
        pct(0.50),
        pct(0.99),
        statuses.join(","),
        next.load(Ordering::Relaxed) >= requests.len()
    );
}
