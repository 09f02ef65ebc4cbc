//! The `mentor` command: parses the command line, calls the library, maps errors to
//! exit code 1 with a one-line message (the cause chain joined by ": ").

mod cli;

use clap::Parser;

fn main() {
    // Every command computes with subnormal floats flushed (a run's --denormals may say
    // otherwise); see mentor::kernels::denormals.
    mentor::kernels::denormals::set_everywhere(mentor::kernels::Denormals::Flush);
    let args = cli::Cli::parse();
    cli::interrupt::install();
    if let Err(err) = cli::run(args) {
        // One line: the cause chain, skipping causes that a message already quotes.
        let mut line = String::new();
        for cause in err.chain() {
            let text = cause.to_string();
            if !line.contains(&text) {
                if !line.is_empty() {
                    line.push_str(": ");
                }
                line.push_str(&text);
            }
        }
        eprintln!("error: {}", line.replace('\n', " "));
        std::process::exit(1);
    }
}

/// mimalloc keeps freed large buffers for reuse instead of returning them to the kernel
/// after every tensor op, which glibc's malloc does (31-44% system time in the CNN step,
/// shared/PERF-NOTES.md); measured in README's bench table.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
