//! Which I/O backend netloop would run on here, and why.
//!
//! ```text
//! cargo run --example backend                    # prints the probe's verdict
//! cargo run --example backend -- --check io_uring   # exit status 1 (and the reason) if unusable
//! ```

use netloop::Backend;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verdict = Backend::io_uring_unavailable();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => match verdict {
            None => println!("io_uring: usable (Backend::Auto picks io_uring)"),
            Some(why) => println!("io_uring: not usable: {why} (Backend::Auto picks epoll)"),
        },
        ["--check", "io_uring"] => {
            if let Some(why) = verdict {
                eprintln!("io_uring is not usable here: {why}");
                std::process::exit(1);
            }
        }
        ["--check", "epoll"] => {}
        _ => {
            eprintln!("usage: backend [--check io_uring|epoll]");
            std::process::exit(2);
        }
    }
}
