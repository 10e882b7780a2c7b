//! A TCP proxy in front of a real registry that answers the first connections with an
//! HTTP error instead of forwarding them: fault injection for retry paths, with every
//! successful exchange still served by the real registry.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// A running proxy; stopped on drop.
pub struct FlakyProxy {
    port: u16,
    faults_served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FlakyProxy {
    /// Forwards to `127.0.0.1:upstream_port`, except that the first `faults` connections
    /// get `status` (e.g. 503 or 429) and are closed.
    pub fn start(upstream_port: u16, faults: usize, status: u16) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let faults_served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (served, stop) = (faults_served.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    if served.load(Ordering::SeqCst) < faults {
                        served.fetch_add(1, Ordering::SeqCst);
                        refuse(conn, status);
                    } else {
                        std::thread::spawn(move || forward(conn, upstream_port));
                    }
                }
            })
        };
        FlakyProxy {
            port,
            faults_served,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many connections got the injected error.
    pub fn faults_served(&self) -> usize {
        self.faults_served.load(Ordering::SeqCst)
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads the request head, answers `status` with an empty body, closes.
fn refuse(conn: TcpStream, status: u16) {
    let Ok(read) = conn.try_clone() else { return };
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} Injected\r\nContent-Length: 0\r\nRetry-After: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = conn.shutdown(Shutdown::Both);
}

/// Copies bytes both ways until either side closes.
fn forward(client: TcpStream, upstream_port: u16) {
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
        return;
    };
    let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let mut client = client;
        let mut upstream = upstream;
        let _ = std::io::copy(&mut client, &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut u2, &mut c2);
    let _ = c2.shutdown(Shutdown::Write);
    let _ = up.join();
}
