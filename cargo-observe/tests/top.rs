//! `cargo observe top` receives real packets from a real observed program and prints its table.

use std::process::Command;
use std::time::Duration;

#[test]
fn top_shows_what_an_observed_program_sends() {
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let top = Command::new(env!("CARGO_BIN_EXE_cargo-observe"))
        .args(["observe", "top", "--addr", &addr, "--for", "2", "--interval", "0.5"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // What observe sends for two handler calls, one an error, and an N+1 (lines from a real flush).
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let packet = "observe.scope.duration:3.2|d|#kind:handler,scope:shop.list_orders,outcome:ok\n\
                  observe.scope.queries:11|d|#kind:handler,scope:shop.list_orders,outcome:ok\n\
                  observe.scope.n_plus_one:1|c|#kind:handler,scope:shop.list_orders,outcome:ok\n\
                  observe.scope.calls:1|c|#kind:handler,scope:shop.list_orders,outcome:ok\n\
                  observe.scope.calls:1|c|#kind:handler,scope:shop.list_orders,outcome:error";
    sender.send_to(packet.as_bytes(), &addr).unwrap();
    let output = top.wait_with_output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let row = text
        .lines()
        .find(|l| l.starts_with("shop.list_orders"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "handler");
    assert_eq!(cells[2], "2", "calls: {row}");
    assert_eq!(cells[3], "1", "errors: {row}");
    assert_eq!(cells[9], "11/11/11", "queries: {row}");
    assert_eq!(cells.last(), Some(&"1"), "N+1: {row}");
}

#[test]
fn top_reports_a_busy_port() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-observe"))
        .args(["top", "--addr", &addr, "--for", "1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen on"));
}
