//! `cargo-observe`: run as `cargo observe lint` (cargo passes `observe` first) or `cargo-observe lint`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let status = cargo_observe::run(&args, &mut stdout.lock(), &mut stderr.lock());
    std::process::exit(status);
}
