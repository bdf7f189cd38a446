//! Bodies that never return normally, in functions that declare no return type: a worker's loop, a command
//! that exits the process. They compile as they did without the attribute (the outcome's probe would otherwise
//! guess a `Result` for them).
use observe::observe;

#[observe(task)]
async fn serve() {
    loop {
        tokio::task::yield_now().await;
    }
}

#[observe]
fn spin() {
    loop {
        std::hint::spin_loop();
    }
}

#[observe(command)]
fn quit() {
    println!("bye");
    std::process::exit(0)
}

fn main() {
    let _worker = serve;
    let _never_called = spin;
    quit();
}
